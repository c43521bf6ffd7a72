-- sfreports.retry: when a failed request is tried again, and how long to wait first.
--
-- Policy (Client:_send routes every request through M.call):
--   * GET, HEAD and DELETE are idempotent: they are tried again after a `network` or
--     `timeout` error, and after HTTP 502, 503 or 504.
--   * Any other method (a POST that starts a run) is tried again only when the request
--     provably never reached the server: a `network` error with request_sent == false
--     (connection refused, DNS failure). A POST that timed out or lost its connection
--     may have started a run, and a second run would cost the user another one.
--   * Nothing else is retried: `limit` errors (REQUEST_LIMIT_EXCEEDED, run limits) go
--     back to the caller at once with any `retry_after` hint; 4xx, `decode`, `auth`,
--     `invalid` errors would fail the same way again. A TLS verification failure is a
--     network error marked retryable = false, and is not retried either.
--
-- Waits: exponential backoff from `retry_base` (client option, default 0.5 s), doubling
-- per attempt, capped at MAX_BACKOFF, with "equal jitter" (half fixed, half random) so
-- that many clients failing together do not come back in lockstep. A Retry-After from
-- the server is honoured as given, up to MAX_RETRY_AFTER; a longer one is not waited
-- for: the error goes back to the caller with its retry_after.
-- `retries` (client option, default 3) is the number of tries after the first; 0
-- disables retrying. The sleep is the one sfreports.async picks (ngx.sleep inside
-- nginx, the user's `sleep` option, else the C core's blocking sleep).
--
-- The final error carries `attempts` (tries made) when more than one try was made.
local random, min, floor = math.random, math.min, math.floor
local type = type

local M = {}

M.DEFAULT_RETRIES = 3
M.DEFAULT_BASE = 0.5      -- seconds before the first retry (before jitter)
M.MAX_BACKOFF = 8         -- no backoff wait is longer than this
M.MAX_RETRY_AFTER = 30    -- a Retry-After longer than this is handed to the caller

local IDEMPOTENT = { GET = true, HEAD = true, DELETE = true }
local RETRY_STATUS = { [502] = true, [503] = true, [504] = true }

-- True when err may be cured by sending method again.
function M.retryable(method, err)
  if type(err) ~= "table" then return false end
  local kind = err.kind
  if kind == "limit" or kind == "invalid" or kind == "auth" or kind == "decode" then
    return false
  end
  if not IDEMPOTENT[method] then
    return kind == "network" and err.request_sent == false and err.retryable ~= false
  end
  if kind == "network" or kind == "timeout" then
    return err.retryable ~= false
  end
  return RETRY_STATUS[err.status] == true
end

-- Seconds to wait before retry number `attempt` (1-based), or nil when the server asked
-- for a longer wait than we are willing to make.
function M.delay(attempt, err, base)
  local ra = type(err) == "table" and err.retry_after
  if type(ra) == "number" and ra >= 0 then
    if ra > M.MAX_RETRY_AFTER then return nil end
    return ra
  end
  local d = min(base * 2 ^ (attempt - 1), M.MAX_BACKOFF)
  return d / 2 + random() * d / 2
end

local function options(client)
  local opts = type(client) == "table" and client._opts or {}
  local retries = opts.retries or M.DEFAULT_RETRIES
  local base = opts.retry_base or M.DEFAULT_BASE
  if retries < 0 or retries ~= floor(retries) then
    error("sfreports: option 'retries' must be a whole number >= 0, got " .. retries, 4)
  end
  if base < 0 then
    error("sfreports: option 'retry_base' must not be negative, got " .. base, 4)
  end
  return retries, base
end

-- Calls try() (which returns value, meta | nil, err) until it succeeds or the policy says
-- stop, and returns its last results. method is the HTTP method of the request.
function M.call(client, method, try)
  local retries, base = options(client)
  local value, meta = try()
  local attempt = 0
  local sleep
  while value == nil and attempt < retries and M.retryable(method, meta) do
    local wait = M.delay(attempt + 1, meta, base)
    if wait == nil then break end
    attempt = attempt + 1
    if wait > 0 then
      sleep = sleep or require("sfreports.async").sleeper(client, {})
      sleep(wait)
    end
    value, meta = try()
  end
  if value == nil and attempt > 0 and type(meta) == "table" then
    meta.attempts = attempt + 1
  end
  return value, meta
end

return M
