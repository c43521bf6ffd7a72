-- bench/plan_lua.lua: the in-process contender of the Planned paging scenario:
-- client:run_all over the whole report with the given strategy ("planned" or "keyset"),
-- every row streamed into writers.csv with a sink that discards (as `--all -o /dev/null`).
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/plan_lua.lua REPORT_ID STRATEGY
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")

local id = assert(arg[1], "usage: plan_lua.lua REPORT_ID STRATEGY")
local strategy = assert(arg[2], "usage: plan_lua.lua REPORT_ID STRATEGY")
local client = common.client()
local paged = assert(client:run_all(id, { strategy = strategy }))
local bytes = 0
local rows = assert(paged:write("csv", function(chunk) bytes = bytes + #chunk end))
assert(paged.strategy == strategy, "ran as " .. tostring(paged.strategy))
client:close()
common.report({ rows = rows, bytes = bytes, runs = paged.stats.runs, slices = paged.stats.slices })
