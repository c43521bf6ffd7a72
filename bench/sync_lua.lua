-- bench/sync_lua.lua: the in-process sfreports contender of the Sync CSV scenario:
-- client:run_sync (fetch + decode in the C core) then writers.csv into a sink that
-- discards, as a program embedding the library would do it.
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/sync_lua.lua REPORT_ID   (or luajit)
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")
local writers = require "sfreports.writers"

local id = assert(arg[1], "usage: sync_lua.lua REPORT_ID")
local client = common.client()
local report = assert(client:run_sync(id))
local bytes = 0
local rows = assert(writers.csv(report, function(chunk) bytes = bytes + #chunk end))
client:close()
common.report({ rows = rows, bytes = bytes })
