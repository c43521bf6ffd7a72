-- bench/async_lua.lua: the in-process contender of the Async scenario of bench/compare.lua:
-- N asynchronous runs one after the other (client:run_async, client:wait, then
-- writers.csv into a sink that discards). The server-side delay is set by the driver.
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/async_lua.lua REPORT_ID [N]   (or luajit)
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")
local writers = require "sfreports.writers"

local id = assert(arg[1], "usage: async_lua.lua REPORT_ID [N]")
local n = tonumber(arg[2]) or 5
local client = common.client()
local rows, bytes = 0, 0
for _ = 1, n do
  local inst = assert(client:run_async(id))
  local report = assert(client:wait(inst))
  rows = rows + assert(writers.csv(report, function(chunk) bytes = bytes + #chunk end))
end
client:close()
common.report({ rows = rows, bytes = bytes })
