-- sfreports.retry: when a failed request is tried again, and how long to wait first.
--
-- Policy (sfreports.send asks it after every failed try, for single calls and run_many):
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
-- disables retrying. Every wait happens inside the call's deadline (sfreports.send): a
-- wait that would end past it is not made.
local random, min = math.random, math.min
local type = type

local M = {}

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

return M
