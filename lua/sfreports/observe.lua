-- sfreports.observe: what a client's requests did, for its users. One Observer per
-- client counts every HTTP exchange (client:usage()) and, when the client was made with
-- `on_request = function(info) ... end`, hands the hook one table per exchange, after
-- it ended: every try of a call, every retry, token request, poll and run_many request,
-- whichever engine carried it (the engines report each exchange's cost in its meta or
-- error: bytes_in, bytes_out, elapsed, connection_reused, target).
--
-- info = {
--   method, path          -- the request target (path and query) as sent; secrets masked
--   status, error         -- the HTTP status (nil when no answer came), the error if any
--   attempt, max_attempts -- this try's number within its call (1 = first), retries + 1
--   elapsed               -- seconds (monotonic) the exchange took
--   bytes_in, bytes_out   -- bytes received / sent (head and body as on the wire)
--   connection_reused     -- a kept-alive connection carried it
--   op                    -- "run_sync", "run_async", "poll", "delete", "describe",
--                            "instances", "token", "limits", "dashboard", "other"
--   report_id, instance_id, dashboard_id -- when the path names them
--   limits                -- the client's parsed Sforce-Limit-Info after this exchange
--   retry_in              -- seconds until this failed request goes again (a retry)
--   renewing              -- true: the token is renewed and the request goes again
--   hook_error            -- the message of the error the hook raised last time, once
-- }
-- A request body (a token request's form above all) is never part of it. The hook may
-- not break a request: it runs under pcall, and what it raised comes back (scrubbed,
-- one line) as `hook_error` in the next info and in usage().hook_errors.
local core = require "sfreports.core"

local type, pcall, tostring, tonumber = type, pcall, tostring, tonumber
local setmetatable, pairs, next = setmetatable, pairs, next
local match, find, gsub, sub, gmatch = string.match, string.find, string.gsub, string.sub, string.gmatch
local monotime = core.monotime

local M = {}

-- Documented org limits (Reports and Dashboards REST API) this client counts against.
M.SYNC_RUNS_PER_HOUR = 500
M.ASYNC_RUNS_PER_HOUR = 1200
M.HOUR = 3600
M.PATH_CACHE = 64       -- scrubbed paths remembered (paths repeat: polls, pages)
M.MAX_HOOK_ERROR = 300  -- bytes of a hook's error message kept

local Observer = {}
Observer.__index = Observer

-- hook: the on_request function or nil; bag: the client's sfreports.secrets; retries:
-- the client's retry count (max_attempts = retries + 1).
function M.new(hook, bag, retries)
  return setmetatable({
    hook = hook, bag = bag, max_attempts = (retries or 0) + 1, created = monotime(),
    requests = 0, retries = 0, renewals = 0, token_requests = 0, failures = 0,
    sync_runs = 0, async_runs = 0, polls = 0, bytes_in = 0, bytes_out = 0,
    hook_errors = 0, last_hook_error = nil, pending_hook_error = nil,
    sync_times = { first = 1, last = 0 }, async_times = { first = 1, last = 0 },
    paths = {}, n_paths = 0, bag_count = 0, limit_info = nil,
  }, Observer)
end

-- Sforce-Limit-Info: "api-usage=10018/100000; api-bursts=1/750" -> { raw = s,
-- ["api-usage"] = { used = 10018, max = 100000 }, ... }
function M.parse_limit_info(s)
  local out = { raw = s }
  for name, used, max in gmatch(s, "([%w%-_]+)=(%d+)/(%d+)") do
    out[name] = { used = tonumber(used), max = tonumber(max) }
  end
  return out
end

-- The same table, parsed when a field other than `raw` is first read (or it is iterated
-- with pairs on Lua 5.2+): every answer carries the header, and parsing it costs as much
-- as a tenth of a small request while few callers ever look.
local LAZY_LIMITS = {}
local function materialize(t)
  setmetatable(t, nil)
  for k, v in pairs(M.parse_limit_info(t.raw)) do t[k] = v end
  return t
end
LAZY_LIMITS.__index = function(t, k) return materialize(t)[k] end
LAZY_LIMITS.__pairs = function(t) return next, materialize(t), nil end

function M.limits_of(s)
  return setmetatable({ raw = s }, LAZY_LIMITS)
end

---------------------------------------------------------------------------
-- what a request target is

-- What a request target names, whatever the method: kind, report_id, instance_id,
-- dashboard_id, where kind is an op or "instances" / "instance" (whose op depends on the
-- method). Plain finds, no patterns over the whole target: this runs once per distinct
-- target, and run_many polls as many distinct targets as it runs reports.
local function classify_target(target)
  local q, h = find(target, "?", 1, true), find(target, "#", 1, true)
  local cut = q and h and (q < h and q or h) or q or h
  local path = cut and sub(target, 1, cut - 1) or target
  local _, at = find(path, "/analytics/", 1, true)
  if at then
    if find(path, "reports/", at + 1, true) == at + 1 then
      local rid = match(path, "^%w+", at + 9)
      local tail = rid and sub(path, at + 9 + #rid) or ""
      if rid then
        if rid == "query" then return "run_sync" end
        if tail == "" or tail == "/" then return "run_sync", rid end
        if tail == "/describe" then return "describe", rid end
        if tail == "/instances" then return "instances", rid end
        local iid = find(tail, "/instances/", 1, true) == 1 and sub(tail, 12) or ""
        if iid ~= "" and not find(iid, "%W") then return "instance", rid, iid end
        return "other", rid
      end
    end
    local did = match(sub(path, at + 1), "^dashboards/(%w+)")
    if did then return "dashboard", nil, nil, did end
    return "other"
  end
  if find(path, "/oauth2/token", 1, true) then return "token" end
  if match(path, "^/services/data/v[%d.]+/limits/?$") then return "limits" end
  return "other"
end

-- op, report_id, instance_id, dashboard_id of a method and request target, remembered
-- per target (targets repeat: pages, polls, describes).
local classified, n_classified = {}, 0
local function classify(method, target)
  if type(target) ~= "string" then return "other" end
  local c = classified[target]
  if c == nil then
    if n_classified >= M.PATH_CACHE * 4 then classified, n_classified = {}, 0 end
    c = { classify_target(target) }
    classified[target] = c
    n_classified = n_classified + 1
  end
  local op = c[1]
  if op == "instances" then
    if method == "POST" then op = "run_async" end
  elseif op == "instance" then
    op = method == "DELETE" and "delete" or "poll"
  end
  return op, c[2], c[3], c[4]
end
M.classify = classify

-- The target with every secret of the bag masked (cached: targets repeat, and the bag
-- only grows, so the cache is dropped whenever it holds more).
function Observer:path(target)
  if type(target) ~= "string" then return nil end
  local bag = self.bag
  local n = bag:count()
  if n ~= self.bag_count or self.n_paths >= M.PATH_CACHE then
    self.paths, self.n_paths, self.bag_count = {}, 0, n
  end
  local p = self.paths[target]
  if p == nil then
    p = bag:scrub(target)
    self.paths[target] = p
    self.n_paths = self.n_paths + 1
  end
  return p
end

---------------------------------------------------------------------------
-- runs in the last hour

local function push_time(q, t)
  q.last = q.last + 1
  q[q.last] = t
end

-- Drops entries older than an hour; returns how many are left.
local function count_recent(q, now)
  local first, last, horizon = q.first, q.last, now - M.HOUR
  while first <= last and q[first] <= horizon do
    q[first] = nil
    first = first + 1
  end
  q.first = first
  return last - first + 1
end

---------------------------------------------------------------------------
-- one exchange

-- Counts an exchange and calls the hook. method: the HTTP method; meta: the answer's
-- meta (on success) or the error (on failure: err); attempt: this try's number;
-- started: when the caller sent it (monotonic; used when the engine did not say);
-- what, wait: what follows a failure ("retry" and the seconds before it, or "renew").
-- limit_info: the Sforce-Limit-Info text of the client's last answer (parsed when read).
function Observer:exchange(method, meta, err, attempt, started, what, wait, limit_info)
  local m = meta or err
  if type(m) ~= "table" then m = {} end
  -- a description refused before anything was sent (a bad id or URL) is no exchange
  if err and m.elapsed == nil and m.kind == "invalid" then return end
  local target = m.target
  local op, rid, iid, did = classify(method, target)
  local status = m.status
  local bin, bout = m.bytes_in or 0, m.bytes_out or 0
  self.requests = self.requests + 1
  self.bytes_in, self.bytes_out = self.bytes_in + bin, self.bytes_out + bout
  if err then self.failures = self.failures + 1 end
  if what == "retry" then self.retries = self.retries + 1 end
  if op == "token" then
    self.token_requests = self.token_requests + 1
  elseif op == "poll" then
    self.polls = self.polls + 1
  elseif not err and (op == "run_sync" or op == "run_async") then
    -- a run the org accepted (2xx) counts against its hourly limit
    local now = monotime()
    if op == "run_sync" then
      self.sync_runs = self.sync_runs + 1
      push_time(self.sync_times, now)
      count_recent(self.sync_times, now)
    else
      self.async_runs = self.async_runs + 1
      push_time(self.async_times, now)
      count_recent(self.async_times, now)
    end
  end
  if limit_info then self.limit_info = limit_info end
  local hook = self.hook
  if not hook then return end
  if err then self.bag:scrub_error(err) end
  local info = {
    method = method, path = self:path(target), status = status, error = err,
    attempt = attempt or 1, max_attempts = self.max_attempts,
    elapsed = m.elapsed or (started and monotime() - started) or nil,
    bytes_in = bin, bytes_out = bout, connection_reused = m.connection_reused == true,
    op = op, report_id = rid, instance_id = iid, dashboard_id = did,
    limits = self:limits(), hook_error = self.pending_hook_error,
  }
  if what == "retry" then info.retry_in = wait elseif what == "renew" then info.renewing = true end
  self.pending_hook_error = nil
  local ok, e = pcall(hook, info)
  if not ok then self:hook_failed(e) end
end

-- What a try returned (value, meta | nil, err), as one exchange of a single try.
function Observer:answer(method, v, meta, started)
  if v ~= nil then return self:exchange(method, meta, nil, 1, started) end
  return self:exchange(method, nil, meta, 1, started)
end

-- A hook that raised: counted, and its message (one line, no secret) kept for the next
-- info and usage().
function Observer:hook_failed(e)
  local msg = tostring(e)
  msg = gsub(self.bag:scrub(msg), "[%c]", " ")
  if #msg > M.MAX_HOOK_ERROR then msg = sub(msg, 1, M.MAX_HOOK_ERROR) .. "..." end
  self.hook_errors = self.hook_errors + 1
  self.last_hook_error = msg
  self.pending_hook_error = msg
end

-- A token renewal succeeded.
function Observer:renewed()
  self.renewals = self.renewals + 1
end

---------------------------------------------------------------------------
-- usage

-- The last Sforce-Limit-Info seen (sfreports.observe.limits_of), or nil.
function Observer:limits()
  local raw = self.limit_info
  if raw == nil then return nil end
  if self.parsed_of ~= raw then self.parsed_limits, self.parsed_of = M.limits_of(raw), raw end
  return self.parsed_limits
end

-- Counts since the client was made: see client:usage() (README).
function Observer:usage()
  local now = monotime()
  local limits = self:limits()
  local api = limits and limits["api-usage"]
  return {
    requests = self.requests, retries = self.retries, renewals = self.renewals,
    token_requests = self.token_requests, failures = self.failures,
    runs = { sync = self.sync_runs, async = self.async_runs }, polls = self.polls,
    bytes_in = self.bytes_in, bytes_out = self.bytes_out,
    api_usage = api and { used = api.used, max = api.max } or nil,
    last_hour = {
      sync_runs = { count = count_recent(self.sync_times, now), limit = M.SYNC_RUNS_PER_HOUR },
      async_runs = { count = count_recent(self.async_times, now), limit = M.ASYNC_RUNS_PER_HOUR },
    },
    hook_errors = self.hook_errors, last_hook_error = self.last_hook_error,
    seconds = now - self.created,
  }
end

M.Observer = Observer

return M
