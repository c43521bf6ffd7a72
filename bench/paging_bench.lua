-- bench/paging_bench.lua: client:run_all over real HTTP against the fake org, for the
-- 5,000-row and the 20,000-row tabular reports (and the 5,000-row summary): rows per
-- second (wall clock, network and fake-org time included), runs, and memory.
--
--   lua5.4 bench/paging_bench.lua            (also lua5.1, lua5.3, luajit; needs `make`)
--
-- Memory, to show that streaming is bounded by a page and not by the report:
--   lua peak  the highest collectgarbage("count") seen while rows stream (sampled every
--             100 rows), above the level before the run, collector running normally;
--   lua live  the most memory held, sampled after a full collection every 1,000 rows;
--   VmHWM     the process's peak resident set (/proc/self/status), read after each case.
--             It only grows, so the cases run smallest first: a 20k figure close to the
--             5k one means the bigger report needed no more memory.
-- Each case runs in a fresh client; rows are consumed (value of every cell read) and dropped.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. here .. "/../spec/support/?.lua;"
  .. package.path
local lua_tag = (type(jit) == "table" and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
package.cpath = here .. "/../build/" .. lua_tag .. "/?.so;" .. package.cpath

local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local core = require "sfreports.core"

local format = string.format

local function vm_hwm()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

local function now()
  return core.monotime and core.monotime() or os.time()
end

local function run_case(org, name, id, opts)
  local client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  collectgarbage("collect")
  local base = collectgarbage("count")
  local peak, live = 0, 0
  local t0, c0 = now(), os.clock()
  local paged = assert(client:run_all(id, opts))
  local n = 0
  for row in paged:rows() do
    n = n + 1
    for _, c in ipairs(row.cells) do local _ = c.value end
    if n % 100 == 0 then
      local m = collectgarbage("count") - base
      if m > peak then peak = m end
    end
    if n % 1000 == 0 then
      collectgarbage("collect")
      local m = collectgarbage("count") - base
      if m > live then live = m end
    end
  end
  local wall, cpu = now() - t0, os.clock() - c0
  assert(not paged.error, paged.error and tostring(paged.error))
  assert(paged.all_data)
  local runs = paged.stats.runs
  client:close()
  print(format("%-22s %6d rows %4d runs %6.2f s %8.0f rows/s  cpu %5.2f s  lua peak %7.0f KB  live %7.0f KB  "
    .. "VmHWM %7s KB", name, n, runs, wall,
    n / wall, cpu, peak, live, tostring(vm_hwm())))
end

local org = fakeorg.start()
local ok, err = pcall(function()
  local R = fakeorg.reports
  print(format("%s, fake org %s", lua_tag, org.url))
  -- warm the fake org's per-worker data caches so the first case is not charged for them
  local warm = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  for _ = 1, 2 do
    for _, k in ipairs({ "tabular_5k", "tabular_20k", "summary_5k" }) do
      assert(warm:run_sync(R[k].id, { details = false }))
    end
  end
  warm:close()
  run_case(org, "tabular_5k keyset", R.tabular_5k.id, {})
  run_case(org, "tabular_20k keyset", R.tabular_20k.id, {})
  run_case(org, "summary_5k ranges", R.summary_5k.id, {})
  run_case(org, "tabular_20k ranges x4", R.tabular_20k.id, { strategy = "ranges", concurrency = 4 })
end)
org:stop()
if not ok then error(err, 0) end
