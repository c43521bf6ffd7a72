-- bench/keepalive_lua.lua: the sfreports contender of the Keep-alive scenario: N
-- sequential small requests through one client, so through one pooled connection of the
-- C engine. KIND: describe (client:describe, no cache: each answer fetched and decoded),
-- describe_raw (client:request_raw on the same URL: fetched, not decoded, as curl does) or
-- list (client:list_reports).
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/keepalive_lua.lua REPORT_ID [N] [KIND]
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")

local id = assert(arg[1], "usage: keepalive_lua.lua REPORT_ID [N] [describe|describe_raw|list]")
local n = tonumber(arg[2]) or 1000
local kind = arg[3] or "describe"
local client = common.client()
if kind == "describe" then
  for _ = 1, n do assert(client:describe(id)) end
elseif kind == "describe_raw" then
  local path = client:path("reports/%s/describe", id)
  for _ = 1, n do assert(client:request_raw("GET", path)) end
elseif kind == "list" then
  for _ = 1, n do assert(client:list_reports()) end
else
  error("bench: unknown request kind " .. kind, 0)
end
local ok, stats = pcall(function() return client.transport:stats() end)
client:close()
common.report({ requests = n, connects = ok and stats.connects or "?" })
