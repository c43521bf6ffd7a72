-- examples/async_sleep_hook.lua: a user `sleep` hook. sfreports calls the function you
-- give (client option `sleep`, or per call) whenever it waits between polls. Here the
-- hook belongs to a tiny cooperative scheduler (the shape of copas.sleep or
-- cqueues.sleep): the task that sleeps gives way, and the others run meanwhile.
--
--   lua5.4 examples/async_sleep_hook.lua [report_id ...]
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

---------------------------------------------------------------------------
-- a tiny scheduler: tasks are coroutines; sched.sleep(s) parks the running task

local sched = { tasks = {} }
local WAKE = {} -- the scheduler's own yield marker

function sched.spawn(name, fn)
  sched.tasks[#sched.tasks + 1] = { name = name, co = coroutine.create(fn), wake = 0 }
end

-- The hook given to sfreports: only valid inside a task.
function sched.sleep(seconds)
  coroutine.yield(WAKE, seconds)
end

function sched.run()
  while #sched.tasks > 0 do
    local now, soonest, alive = core.monotime(), math.huge, {}
    for _, t in ipairs(sched.tasks) do
      if t.wake <= now then
        local ok, marker, seconds = coroutine.resume(t.co)
        if not ok then error(t.name .. ": " .. tostring(marker), 0) end
        if coroutine.status(t.co) ~= "dead" then
          assert(marker == WAKE, "a task yielded something the scheduler does not know")
          t.wake = core.monotime() + seconds
        end
      end
      if coroutine.status(t.co) ~= "dead" then
        alive[#alive + 1] = t
        if t.wake < soonest then soonest = t.wake end
      end
    end
    sched.tasks = alive
    if soonest < math.huge then core.sleep(math.max(0, soonest - core.monotime())) end
  end
end

---------------------------------------------------------------------------

local function main(client, ids)
  local t0 = core.monotime()
  local function stamp() return ("[%4.2f s]"):format(core.monotime() - t0) end

  -- task 1: wait for one instance (the client's sleep hook parks this task between polls)
  sched.spawn("wait", function()
    local inst = assert(client:run_async(ids[1]))
    local report, err = inst:wait({ timeout = 120 })
    print(stamp(), "wait:", report and (report.name .. ", " .. report:row_count() .. " rows") or tostring(err))
  end)

  -- task 2: run several reports at once on the same client
  sched.spawn("run_many", function()
    local list = {}
    for i, id in ipairs(ids) do list[i] = { id = id, async = true } end
    local reports, errs = client:run_many(list, { timeout = 120 })
    for i = 1, #ids do
      print(stamp(), "run_many:", reports[i] and (reports[i].name .. ", " .. reports[i]:row_count() .. " rows")
        or tostring(errs[i]))
    end
  end)

  -- task 3: proof that nothing blocks the scheduler while the others wait
  local ticks = 0
  sched.spawn("ticker", function()
    while ticks < 4 do
      ticks = ticks + 1
      print(stamp(), "tick " .. ticks)
      sched.sleep(0.25)
    end
  end)

  sched.run()
  print(("all tasks done in %.2f s, %d ticks ran meanwhile"):format(core.monotime() - t0, ticks))
end

local client, ids, org = require("example_org").connect("examples/async_sleep_hook.lua", { sleep = sched.sleep }, ...)
local ok, err = pcall(main, client, ids)
client:close()
if org then org:stop() end
if not ok then error(err, 0) end
