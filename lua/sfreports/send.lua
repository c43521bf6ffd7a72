-- sfreports.send: how one call reaches the server with the client's policy. Every
-- request of a client goes through a Sender: single calls with call(), and run_many's
-- requests in flight through after_failure() / renew() / finish(), so both follow the
-- same rules:
--
--   * Deadline. A call's `timeout` bounds the WHOLE call: every try, every backoff wait
--     and a token renewal happen inside it (like a gRPC deadline). Each try is handed
--     what is left, and the engine caps that try's connect + send + receive by it. A
--     backoff wait that would end past the deadline is not made: the call returns its
--     last error. `stall_timeout` (the engine's) still ends a try in which no byte moved.
--   * Retries: sfreports.retry says which failures are tried again and after how long,
--     at most `retries` times.
--   * Renewal: an `auth` failure makes a client that can renew its token (an `auth`
--     flow) fetch a new one, once per call and once per token generation however many
--     requests failed with the old token; the request then goes again with the new one.
--   * Secrets: every error leaving a call is scrubbed of every secret the client holds
--     (sfreports.secrets), whatever the server echoed back.
--   * Limits: each answer's Sforce-Limit-Info is parsed and handed to `on_limits`.
--   * Observation: every exchange (each try, retry, renewal's token request, poll) is
--     counted and handed to the client's `on_request` hook by sfreports.observe, with
--     what follows it (a retry and its wait, or a renewal); exchange() is the one place.
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local observe = require "sfreports.observe"
local phase = require "sfreports.phase"
-- sfreports.retry and sfreports.sleep are loaded when a call fails, not before
local function retry() return require "sfreports.retry" end

local type, setmetatable, pcall, error = type, setmetatable, pcall, error
local format = string.format
local monotime = core.monotime

local M = {}

local Sender = {}
Sender.__index = Sender

-- conf: transport, retries, retry_base, timeout (the default budget of a call, seconds),
-- sleep (the client's `sleep` option or nil), bag (sfreports.secrets), and optionally
-- renew = function(transport, seconds_left) -> token, info | nil, err (an auth flow),
-- on_token = function(token, info), on_limits = function(parsed), observer (an
-- sfreports.observe Observer), ends (a monotonic time no call may last past: the
-- client's `budget`).
function M.new(conf)
  return setmetatable({
    transport = conf.transport, retries = conf.retries, retry_base = conf.retry_base,
    timeout = conf.timeout, sleep = conf.sleep, bag = conf.bag,
    renew_token = conf.renew, on_token = conf.on_token, on_limits = conf.on_limits,
    observer = conf.observer, ends = conf.ends, budget = conf.budget,
    generation = 0, renewing = false, renewals = 0, limit_info = nil,
  }, Sender)
end

M.parse_limit_info = observe.parse_limit_info

-- Takes note of an answer's meta or error (limits: Sforce-Limit-Info comes with
-- errors too). The header is kept as text, and what on_limits gets is parsed when it
-- is read (sfreports.observe.limits_of).
function Sender:observe(meta)
  if type(meta) == "table" then
    local raw = meta.limit_info
    if type(raw) == "string" then
      self.limit_info = raw
      if self.on_limits then self.on_limits(observe.limits_of(raw)) end
    end
  end
end

-- One exchange ended: its limits are noted, it is counted and shown to the on_request
-- hook (sfreports.observe). v, meta: what the try returned (value, meta | nil, err);
-- attempt: its number within the call (1 = first); started: when it was sent; what,
-- wait: what follows a failure (after_failure).
function Sender:exchange(method, v, meta, attempt, started, what, wait)
  self:observe(meta)
  local obs = self.observer
  if not obs then return end
  if v ~= nil then
    obs:exchange(method, meta, nil, attempt, started, nil, nil, self.limit_info)
  else
    obs:exchange(method, nil, meta, attempt, started, what, wait, self.limit_info)
  end
end

-- The error a call returns: tries counted, secrets masked.
function Sender:finish(err, attempt)
  if type(err) ~= "table" then return err end
  if attempt and attempt > 0 then err.attempts = attempt + 1 end
  return self.bag:scrub_error(err)
end

-- The moment a call started now with budget `timeout` (default: the client's) must end,
-- and whether the client's `budget` set it.
function Sender:deadline(timeout)
  local d = monotime() + (timeout or self.timeout)
  local ends = self.ends
  if ends and ends < d then return ends, true end
  return d, false
end

-- What follows a failed try of `method` (attempt = retries made so far; renewed = this
-- call already renewed the token): "renew"; "retry" and the seconds to wait first; or
-- nil (the error is final).
function Sender:after_failure(method, err, attempt, renewed, deadline)
  if type(err) ~= "table" then return nil end
  if err.kind == "auth" and self.renew_token and not renewed then return "renew" end
  if attempt >= self.retries or not retry().retryable(method, err) then return nil end
  local wait = retry().delay(attempt + 1, err, self.retry_base)
  if wait == nil or monotime() + wait >= deadline then return nil end
  return "retry", wait
end

local function deadline_error(timeout, budget)
  if budget then
    return errors.new("timeout", format("the client's budget of %gs ran out", budget),
      { retryable = false, budget = budget })
  end
  return errors.new("timeout", format("the call's timeout of %gs ran out", timeout),
    { retryable = true })
end

-- Waits (in nginx, where other light threads run meanwhile) for a renewal already in
-- progress; blocking callers never get here while one is in progress.
function Sender:wait_renewal(generation, deadline)
  local ngx = phase.ngx()
  while self.renewing and ngx and monotime() < deadline do ngx.sleep(0.005) end
  if self.generation ~= generation then return true end
  return nil, self.renew_error or errors.new("auth", "token renewal failed", { retryable = false })
end

-- Renews the token unless another request already did since `generation` was read.
-- Returns true, or nil and an error. May not return normally if renew_token raises
-- (a bug in a user hook): the flag is reset and the error raised again.
function Sender:renew(generation, deadline)
  if generation ~= self.generation then return true end
  if self.renewing then return self:wait_renewal(generation, deadline) end
  self.renewing = true
  local ok, token, info = pcall(self.renew_token, self.transport, deadline - monotime())
  self.renewing = false
  if not ok then error(token, 0) end
  if not token then
    self.renew_error = info
    return nil, info
  end
  self.renew_error = nil
  self.transport:set_token(token)
  self.generation = generation + 1
  self.renewals = self.renewals + 1
  if self.observer then self.observer:renewed() end
  if self.on_token then self.on_token(token, info) end
  return true
end

-- Sends one call: try(transport, seconds_left) makes one try (returns value, meta |
-- nil, err); method is its HTTP method (for the retry policy); timeout the call's budget
-- (default: the client's). Returns value, meta or nil, err.
function Sender:call(method, try, timeout)
  local budget = timeout or self.timeout
  local deadline, capped = self:deadline(budget)
  local attempt, renewed, tries = 0, false, 0
  local sleep
  while true do
    local now = monotime()
    local left = deadline - now
    if left <= 0 then return nil, self:finish(deadline_error(budget, capped and self.budget), attempt) end
    local generation = self.generation
    local v, meta = try(self.transport, left)
    tries = tries + 1
    if v ~= nil then
      self:exchange(method, v, meta, tries, now)
      return v, meta
    end
    local what, wait = self:after_failure(method, meta, attempt, renewed, deadline)
    self:exchange(method, nil, meta, tries, now, what, wait)
    if what == "renew" then
      renewed = true
      local ok, rerr = self:renew(generation, deadline)
      if not ok then return nil, self:finish(rerr, attempt) end
    elseif what == "retry" then
      attempt = attempt + 1
      if wait > 0 then
        sleep = sleep or require("sfreports.sleep").choose(nil, self.sleep)
        sleep(wait)
      end
    else
      return nil, self:finish(meta, attempt)
    end
  end
end

M.Sender = Sender

return M
