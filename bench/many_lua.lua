-- bench/many_lua.lua: the sfreports contender of the Many scenario: N asynchronous runs
-- started and awaited together from one Lua thread with client:run_many. The server-side
-- delay is set by the driver (POST /__fake/config async_delay). Reports the wall time of
-- the run_many call (process start-up excluded, as for the jsforce contender).
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/many_lua.lua REPORT_ID [N]
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")
local core = require "sfreports.core"

local id = assert(arg[1], "usage: many_lua.lua REPORT_ID [N]")
local n = tonumber(arg[2]) or 100
local client = common.client()
local list = {}
for i = 1, n do list[i] = { id = id, async = true } end
local t0 = core.monotime()
local reports, errs = client:run_many(list)
local wall = core.monotime() - t0
client:close()
local failed = 0
for i = 1, n do
  if not reports[i] or errs[i] then failed = failed + 1 end
end
common.report({ run_wall = string.format("%.4f", wall), failed = failed })
