-- sfreports_log: an on_request hook for nginx (see README.md, "Logging each request to
-- Salesforce"): one JSON line per HTTP exchange with Salesforce in nginx's error log,
-- written with ngx.log from the nginx request the exchange served (the hook runs in that
-- request's context, so ngx.var is readable). Failures and retries are logged at WARN,
-- everything else at INFO (raise error_log to `info` to see every exchange). The path
-- and the error never hold the access token (sfreports masks every secret it holds).
local json = require "sfreports.json"

local ngx = ngx
local floor = math.floor

local M = {}

M.LEVEL = ngx.INFO           -- a successful exchange
M.PROBLEM_LEVEL = ngx.WARN   -- a failed one (retried or not)

function M.record(info)
  local err = info.error
  local limits = info.limits and info.limits["api-usage"]
  return {
    method = info.method, path = info.path, status = info.status, op = info.op,
    ms = floor((info.elapsed or 0) * 1000 + 0.5), bytes_in = info.bytes_in, bytes_out = info.bytes_out,
    attempt = info.attempt, reused = info.connection_reused, retry_in = info.retry_in,
    report_id = info.report_id, instance_id = info.instance_id,
    error = err and err.kind, message = err and err.message, code = err and err.code,
    api_usage = limits and (limits.used .. "/" .. limits.max),
    hook_error = info.hook_error,
    -- the nginx request this exchange served
    request = ngx.var.request_uri, request_id = ngx.var.request_id,
  }
end

function M.on_request(info)
  local level = (info.error or info.retry_in) and M.PROBLEM_LEVEL or M.LEVEL
  ngx.log(level, "sfreports ", json.encode(M.record(info)))
end

return M
