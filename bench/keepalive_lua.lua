-- bench/keepalive_lua.lua: the sfreports contender of the Keep-alive scenario: N
-- sequential small requests through one client, so through one pooled connection of the
-- C engine. KIND: describe (client:describe, no cache: each answer fetched and decoded),
-- describe_raw (client:request_raw on the same URL: fetched, not decoded, as curl does) or
-- list (client:list_reports), or hook: what an on_request hook costs (see below).
--
--   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... lua5.4 bench/keepalive_lua.lua REPORT_ID [N] [KIND] [ROUNDS]
local common = dofile(((arg and arg[0] or ""):match("^(.*)[/\\]") or ".") .. "/common.lua")

local id = assert(arg[1], "usage: keepalive_lua.lua REPORT_ID [N] [describe|describe_raw|list|hook] [ROUNDS]")
local n = tonumber(arg[2]) or 1000
local kind = arg[3] or "describe"

-- hook: ROUNDS rounds of N describe_raw requests (the cheapest request, so the one where
-- a hook weighs most) through ONE client and one connection (so one fake org worker),
-- with its on_request hook (a typical light one: it reads a few fields) set in every
-- other round, alternating which goes first; each round's time is the process's own
-- monotonic clock around its N requests. (The bench switches the hook through the
-- client's observer: two clients would be two connections, served by workers whose
-- speed differs more than the hook costs.) Reports the median of the per-round ratios
-- (hook / no hook), and what one Observer:exchange costs without the network.
if kind == "hook" then
  local core = require "sfreports.core"
  local monotime = core.monotime
  local rounds = tonumber(arg[4]) or 9
  local seen, bytes = 0, 0
  local function hook(info)
    seen = seen + 1
    bytes = bytes + info.bytes_in
    if info.status ~= 200 or info.error then error("bench: unexpected answer " .. tostring(info.status)) end
  end
  local client = common.client({ on_request = hook })
  local observer = client.observer
  local path = client:path("reports/%s/describe", id)
  local function round(with_hook)
    observer.hook = with_hook and hook or nil
    local t0 = monotime()
    for _ = 1, n do assert(client:request_raw("GET", path)) end
    return monotime() - t0
  end
  round(false)
  round(true) -- warm-up: the connection open, code compiled
  local ratios, a_all, b_all = {}, {}, {}
  for r = 1, rounds do
    local a, b
    if r % 2 == 1 then a = round(false); b = round(true) else b = round(true); a = round(false) end
    ratios[r], a_all[r], b_all[r] = b / a, a, b
  end
  local function median(t)
    table.sort(t)
    local k = #t
    return k % 2 == 1 and t[(k + 1) / 2] or (t[k / 2] + t[k / 2 + 1]) / 2
  end
  assert(seen == n * (rounds + 1), "bench: the hook saw " .. seen .. " exchanges")
  local spread = math.max((table.unpack or unpack)(a_all)) / math.min((table.unpack or unpack)(a_all))
  local plain_ms = median(a_all) / n * 1000
  -- the counting alone: Observer:exchange with a meta like the engine's, no hook
  local obs = require("sfreports.observe").new(nil, require("sfreports.secrets").new(), 3)
  local meta = { status = 200, bytes_in = 4000, bytes_out = 230, elapsed = 0.001, connection_reused = true,
    target = path }
  local k, t0 = 200000, monotime()
  for _ = 1, k do obs:exchange("GET", meta, nil, 1, t0) end
  local count_us = (monotime() - t0) / k * 1e6
  -- and with the same hook: what the hook adds to each exchange (its info table, pcall)
  local obs_hooked = require("sfreports.observe").new(hook, require("sfreports.secrets").new(), 3)
  t0 = monotime()
  for _ = 1, k do obs_hooked:exchange("GET", meta, nil, 1, t0) end
  local hook_us = (monotime() - t0) / k * 1e6 - count_us
  local stats = client.transport:stats()
  client:close()
  common.report({ requests = n * (rounds + 1) * 2, rounds = rounds, hook_ratio = median(ratios), spread = spread,
    plain_ms_per_request = plain_ms, hook_ms_per_request = median(b_all) / n * 1000,
    count_us = count_us, hook_us = hook_us, hook_cost_ratio = 1 + hook_us / (plain_ms * 1000),
    count_cost_ratio = 1 + count_us / (plain_ms * 1000), connects = stats.connects })
  return
end

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
