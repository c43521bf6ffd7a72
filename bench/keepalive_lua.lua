-- bench/keepalive_lua.lua: the sfreports contender of the Keep-alive scenario: N
-- sequential describe requests (no describe cache) through one client, so through one
-- pooled connection of the C engine. Each answer is fetched and decoded.
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/keepalive_lua.lua REPORT_ID [N]
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")

local id = assert(arg[1], "usage: keepalive_lua.lua REPORT_ID [N]")
local n = tonumber(arg[2]) or 1000
local client = common.client()
for _ = 1, n do
  assert(client:describe(id))
end
local ok, stats = pcall(function() return client.transport:stats() end)
if not ok then stats = {} end
client:close()
common.report({ requests = n, connects = stats.connects or "?" })
