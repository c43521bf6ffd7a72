-- bench/xlsx_lua.lua: the writers alone, in one process: the report is run once, then
-- written REPS times as CSV (into a sink that discards) and as .xlsx (writers.xlsx into a
-- file, libxlsxwriter in constant-memory mode, the zip assembled at close), alternating.
-- Reports the median seconds of each ("bench csv_s X", "bench xlsx_s Y").
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/xlsx_lua.lua REPORT_ID TMPDIR [REPS]
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")
local writers = require "sfreports.writers"
local core = require "sfreports.core"

local id, dir = assert(arg[1], "usage: xlsx_lua.lua REPORT_ID TMPDIR [REPS]"), assert(arg[2])
local reps = tonumber(arg[3]) or 9
local client = common.client()
local report = assert(client:run_sync(id))
client:close()

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local csv_t, xlsx_t = {}, {}
local path = dir .. "/bench.xlsx"
for i = 0, reps do
  collectgarbage("collect")
  local t0 = core.monotime()
  assert(writers.csv(report, function() end))
  local t1 = core.monotime()
  collectgarbage("collect")
  local t2 = core.monotime()
  assert(writers.xlsx(report, path))
  local t3 = core.monotime()
  if i > 0 then csv_t[#csv_t + 1], xlsx_t[#xlsx_t + 1] = t1 - t0, t3 - t2 end -- run 0 warms up
end
os.remove(path)
common.report({ csv_s = median(csv_t), xlsx_s = median(xlsx_t), rows = report:row_count() })
