-- fakeorg.state: everything shared between nginx workers, kept in lua_shared_dicts:
-- configuration, valid tokens, injected faults and request statistics.
local util = require "fakeorg.util"

local ngx = ngx
local state = {}

local function dict() return ngx.shared.fakeorg_state end
local function stats_dict() return ngx.shared.fakeorg_stats end

state.DEFAULTS = { async_delay = 0.2, sync_delay = 0, slow_delay = 2, api_limit = 15000,
  dashboard_refresh_delay = 0.5, dashboard_refresh_limit = 200, dashboard_refresh_gate = 0,
  sync_gate = 0, instance_owner = 1, instance_backdate = 0 }

-- Called from init_by_lua with the start-up options.
function state.init(opts)
  local d = dict()
  d:set("startup_token", opts.token)
  state.reset()
end

function state.reset()
  local d = dict()
  local token = d:get("startup_token")
  local epoch = d:get("epoch") or 0
  d:flush_all()
  -- requests that started before the reset must not count in the new statistics when
  -- they finish (an abandoned transfer may end after the next test has begun)
  d:set("epoch", epoch + 1)
  d:set("startup_token", token)
  d:set("token_gen", 1)
  d:set("tok:" .. token, 1)
  d:set("api_usage", 1000)
  d:set("seq", 0)
  stats_dict():flush_all()
  ngx.shared.fakeorg_instances:flush_all()
end

function state.next_seq()
  return dict():incr("seq", 1, 0)
end

-- Runs fn(...) holding a lock that every worker sees: a check-then-set on the shared dicts
-- is not atomic across the org's workers. fn must not yield (it only reads and writes the
-- dicts), so the lock is held for microseconds and a waiter spins instead of sleeping,
-- which works in every phase (log_by_lua cannot sleep). The lock expires after a second
-- should a worker die holding it.
function state.locked(name, fn, ...)
  local d, key = dict(), "lock:" .. name
  local give_up
  while not d:add(key, true, 1) do
    ngx.update_time()
    give_up = give_up or ngx.now() + 2
    if ngx.now() > give_up then error("fakeorg: the lock " .. name .. " stayed taken") end
  end
  local ok, a = pcall(fn, ...)
  d:delete(key)
  if not ok then error(a, 0) end
  return a
end

-- Gates: a counter of arrivals of one kind since the reset, and a wait for it to reach n.
-- Specs that prove n requests overlap set a gate instead of racing process start-up.

-- Counts one arrival of the kind and returns the count.
function state.arrive(kind)
  return dict():incr("arrivals:" .. kind, 1, 0)
end

function state.arrivals(kind)
  return dict():get("arrivals:" .. kind) or 0
end

-- Sleeps (cosocket-friendly) until n arrivals of the kind, or at most `limit` seconds.
function state.wait_for_arrivals(kind, n, limit)
  local until_ = ngx.now() + limit
  while state.arrivals(kind) < n and ngx.now() < until_ do
    ngx.sleep(0.01)
    ngx.update_time()
  end
end

-- Configuration --------------------------------------------------------------------------

function state.config(key)
  local v = dict():get("cfg:" .. key)
  if v == nil then return state.DEFAULTS[key] end
  return v
end

function state.all_config()
  local out = {}
  for k in pairs(state.DEFAULTS) do out[k] = state.config(k) end
  return out
end

function state.set_config(key, value)
  if state.DEFAULTS[key] == nil then return nil, "unknown config key " .. tostring(key) end
  if type(value) ~= "number" or value < 0 then return nil, key .. " must be a non-negative number" end
  dict():set("cfg:" .. key, value)
  return true
end

-- Tokens: a token is valid while its generation equals the current one. ----------------

function state.token_valid(token)
  local d = dict()
  return token ~= nil and d:get("tok:" .. token) == d:get("token_gen")
end

function state.add_token(token)
  local d = dict()
  d:set("tok:" .. token, d:get("token_gen"))
end

function state.expire_tokens()
  dict():incr("token_gen", 1, 1)
end

function state.mint_token()
  local token = ("00DFAKE!fake-minted-token-%d"):format(state.next_seq())
  state.add_token(token)
  return token
end

function state.api_usage()
  return dict():incr("api_usage", 1, 0), state.config("api_limit")
end

-- Faults: fault:<n> = JSON definition, left:<n> = remaining count (atomic decrement). ----

function state.add_fault(def)
  local n = state.next_seq()
  local d = dict()
  d:set("fault:" .. n, util.encode(def))
  d:set("left:" .. n, def.count)
  d:set("skip:" .. n, tonumber(def.after) or 0)
  local order = d:get("fault_order")
  d:set("fault_order", (order and order .. "," or "") .. n)
  return n
end

-- Takes one matching fault (consuming one count), or nil. body() gives the request body
-- text (read only for a fault with a `match` pattern).
function state.take_fault(uri, body)
  local d = dict()
  local order = d:get("fault_order")
  if not order then return nil end
  for n in order:gmatch("%d+") do
    local left = d:get("left:" .. n)
    if left and left > 0 then
      local def = util.decode(d:get("fault:" .. n))
      if def and (not def.path or uri:find(def.path))
          and (not def.match or ((body and body() or ""):find(def.match)) ~= nil) then
        -- `after`: let that many matching requests through before the fault starts
        if (d:incr("skip:" .. n, -1, 0) or -1) >= 0 then return nil end
        local remaining = d:incr("left:" .. n, -1)
        if remaining and remaining >= 0 then return def end
      end
    end
  end
  return nil
end

-- Statistics -----------------------------------------------------------------------------

local function bump(key, by)
  return stats_dict():incr(key, by or 1, 0)
end
state.bump = bump

-- Raises a "most at once" statistic to value, under a lock: with a plain get-then-set a
-- worker could overwrite another's higher maximum with its own lower one.
local function raise_max(key, value)
  local s = stats_dict()
  if value > (s:get(key) or 0) then s:set(key, value) end
end

function state.record_max(key, value)
  state.locked("max:" .. key, raise_max, key, value)
end

function state.request_started(uri)
  local s = stats_dict()
  bump("requests")
  bump("path:" .. uri)
  if s:add("conn:" .. ngx.var.connection, true) then bump("connections") end
  state.record_max("max_concurrent", bump("inflight"))
  ngx.ctx.fakeorg_counted = dict():get("epoch") or 0
end

-- log_by_lua: in-flight bookkeeping and gzip count.
function state.request_finished()
  local epoch = ngx.ctx.fakeorg_counted
  if not epoch or epoch ~= (dict():get("epoch") or 0) then return end
  bump("inflight", -1)
  if ngx.var.sent_http_content_encoding == "gzip" and not ngx.ctx.fakeorg_own_encoding then
    bump("gzip")
  end
end

function state.stats()
  local s = stats_dict()
  local out = { requests = s:get("requests") or 0, connections = s:get("connections") or 0,
    gzip = s:get("gzip") or 0, max_concurrent = s:get("max_concurrent") or 0,
    inflight = s:get("inflight") or 0, max_running_instances = s:get("max_running_instances") or 0,
    by_path = {}, instance_polls = {}, dashboard_log = {},
    sync_runs = s:get("runs:sync") or 0, async_runs = s:get("runs:async") or 0 }
  local dlog = {}
  for _, key in ipairs(s:get_keys(0)) do
    local path = key:match("^path:(.*)$")
    if path then out.by_path[path] = s:get(key) end
    local iid = key:match("^poll:(.*)$")
    if iid then out.instance_polls[iid] = s:get(key) end
    if key:match("^dlog:") then dlog[#dlog + 1] = key end
  end
  -- dashboard requests in arrival order (fakeorg.dashboards)
  table.sort(dlog)
  for i, key in ipairs(dlog) do out.dashboard_log[i] = util.decode(s:get(key)) end
  return out
end

return state
