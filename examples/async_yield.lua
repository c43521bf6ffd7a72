-- examples/async_yield.lua: the yield protocol. With `yield = true`, code waiting inside
-- a coroutine does not sleep itself; it yields
--     { sfreports = "sleep", seconds = s }
-- to whoever resumed it, and expects to be resumed (no values needed) once about `s`
-- seconds have passed. Your own loop decides how to spend that time: here it is a plain
-- resume loop that sleeps, and then an event loop that keeps several coroutines going.
-- Anything else a coroutine yields is not from sfreports: pass it on to your own code.
--
--   lua5.4 examples/async_yield.lua [report_id ...]
--
-- With SF_INSTANCE_URL and SF_ACCESS_TOKEN set it runs the given reports on that org;
-- otherwise it starts the bundled fake org (instances there take 1 s, or
-- SFREPORTS_FAKE_DELAY seconds) and uses its reports.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = here .. "/?.lua;" .. here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;"
  .. here .. "/../spec/support/?.lua;" .. package.path
package.cpath = here .. "/../build/" .. runtime .. "/?.so;" .. package.cpath

local core = require "sfreports.core"

local function is_sleep(req)
  return type(req) == "table" and req.sfreports == "sleep" and type(req.seconds) == "number"
end

-- 1. The smallest loop: resume, sleep as asked, resume again until the coroutine ends.
local function run_to_end(fn)
  local co = coroutine.create(fn)
  local sleeps = 0
  local res = { coroutine.resume(co) }
  while coroutine.status(co) ~= "dead" do
    if not res[1] then error(res[2], 0) end
    if is_sleep(res[2]) then
      sleeps = sleeps + 1
      core.sleep(res[2].seconds)
    else
      error("not an sfreports request: " .. tostring(res[2]))
    end
    res = { coroutine.resume(co) }
  end
  if not res[1] then error(res[2], 0) end
  return sleeps, res[2], res[3]
end

-- 2. An event loop: every coroutine has a wake-up time; the loop sleeps only until the
-- earliest one, so the waits overlap.
local function run_together(fns)
  local jobs, results = {}, {}
  for i, fn in ipairs(fns) do jobs[i] = { co = coroutine.create(fn), wake = 0 } end
  local left = #jobs
  while left > 0 do
    local soonest = math.huge
    for i, job in ipairs(jobs) do
      if coroutine.status(job.co) ~= "dead" and job.wake <= core.monotime() then
        local ok, req, err = coroutine.resume(job.co)
        if not ok then error(req, 0) end
        if coroutine.status(job.co) == "dead" then
          results[i], left = { req, err }, left - 1
        elseif is_sleep(req) then
          job.wake = core.monotime() + req.seconds
        else
          error("not an sfreports request: " .. tostring(req))
        end
      end
      if coroutine.status(job.co) ~= "dead" and job.wake < soonest then soonest = job.wake end
    end
    if soonest < math.huge then core.sleep(math.max(0, soonest - core.monotime())) end
  end
  return results
end

local function describe(report, err)
  if not report then return "failed: " .. tostring(err) end
  return ("%s (%s), %d rows"):format(report.name, report.format, report:row_count())
end

local function main(client, ids)
  local t0 = core.monotime()
  local inst = assert(client:run_async(ids[1]))
  local sleeps, report, err = run_to_end(function() return inst:wait({ yield = true, timeout = 120 }) end)
  print(("one wait, %d sleep requests, %.2f s: %s"):format(sleeps, core.monotime() - t0, describe(report, err)))

  t0 = core.monotime()
  local fns = {}
  for i, id in ipairs(ids) do
    fns[i] = function()
      local started = assert(client:run_async(id))
      return started:wait({ yield = true, timeout = 120 })
    end
  end
  local results = run_together(fns)
  print(("%d waits together, %.2f s:"):format(#ids, core.monotime() - t0))
  for i, r in ipairs(results) do print(("  %d. %s"):format(i, describe(r[1], r[2]))) end

  -- run_many yields the same requests while its own requests stay in flight.
  t0 = core.monotime()
  local list = {}
  for i, id in ipairs(ids) do list[i] = { id = id, async = i % 2 == 1 } end
  local n, reports, errs = run_to_end(function() return client:run_many(list, { yield = true, timeout = 120 }) end)
  print(("run_many (async and sync mixed), %d sleep requests, %.2f s:"):format(n, core.monotime() - t0))
  for i = 1, #ids do print(("  %d. %s"):format(i, describe(reports[i], errs[i]))) end
end

local client, ids, org = require("example_org").connect("examples/async_yield.lua", nil, ...)
local ok, err = pcall(main, client, ids)
client:close()
if org then org:stop() end
if not ok then error(err, 0) end
