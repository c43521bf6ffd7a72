-- sfreports_handlers: example OpenResty / nginx handlers built on sfreports.
-- Inside a content handler sfreports talks to Salesforce over cosockets (non-blocking),
-- so one nginx worker serves many report requests at once. See README.md.
--   GET  /reports/<id>.csv               run the report (sync) and stream it as CSV
--   GET  /reports/<id>.xlsx              Salesforce's formatted export, streamed through
--   GET  /reports/<id>/describe          the report's describe, as Salesforce sent it
--   POST /reports/<id>/runs              start an async run; JSON {id, status, ...}
--   GET  /reports/<id>/runs/<iid>        status of an async run as JSON
--   GET  /reports/<id>/runs/<iid>.csv    wait for the run (ngx.sleep) and stream CSV
-- Query options: raw=1 (values instead of labels), details=0, timeout=<s> (waits).
-- The org comes from the environment (SF_INSTANCE_URL, SF_ACCESS_TOKEN, SF_API_VERSION),
-- passed to the workers with nginx's `env` directive; the token never appears in config.
local sfreports = require "sfreports"
local writers = require "sfreports.writers"
local json = require "sfreports.json"
local async = require "sfreports.async"

local ngx = ngx
local concat = table.concat
local tonumber, tostring, pairs = tonumber, tostring, pairs

local M = {}

M.FLUSH_BYTES = 64 * 1024 -- CSV is handed to nginx in pieces of about this size

-- HTTP status for each sfreports error kind, as seen by this service's callers.
local STATUS = {
  invalid = 400, auth = 502, http = 502, api = 502, decode = 502,
  network = 502, timeout = 504, limit = 429, io = 502,
}

local function send_json(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json.encode(value))
  return ngx.exit(status)
end

-- Answers with the error as JSON; the message never holds the token (sfreports
-- guarantees that), so it can be shown to the caller.
local function send_error(err)
  local status = STATUS[err.kind] or 500
  if err.kind == "api" and err.status == 404 then status = 404 end
  if err.code == "INSTANCE_NOT_READY" then status = 409 end
  return send_json(status, {
    error = err.kind, message = err.message, code = err.code,
    status = err.status, retryable = err.retryable,
  })
end

-- A client per request: creating one does no I/O, and connections are pooled by nginx
-- (setkeepalive), not by the client. `overrides` adds client options (e.g. timeout).
function M.client(overrides)
  local opts = {}
  for k, v in pairs(overrides or {}) do opts[k] = v end
  local client, err = sfreports.from_env(opts)
  if not client then return send_error(err) end
  return client
end

local function run_options()
  local args = ngx.req.get_uri_args()
  return {
    raw = args.raw == "1" or args.raw == "true",
    details = args.details ~= "0" and args.details ~= "false",
    timeout = tonumber(args.timeout),
  }
end

-- Streams a report as CSV. Rows are formatted one at a time by the writer and handed to
-- nginx in ~64 KB pieces (ngx.print + a non-waiting ngx.flush), so memory stays flat.
function M.stream_csv(report, filename, raw)
  ngx.status = 200
  ngx.header["Content-Type"] = "text/csv; charset=utf-8"
  ngx.header["Content-Disposition"] = 'attachment; filename="' .. filename .. '"'
  local buf, size = {}, 0
  local function flush()
    if size == 0 then return true end
    local ok, err = ngx.print(concat(buf))
    buf, size = {}, 0
    if not ok then return nil, err end
    ngx.flush(false)
    return true
  end
  local n, err = writers.csv(report, function(chunk)
    buf[#buf + 1] = chunk
    size = size + #chunk
    if size >= M.FLUSH_BYTES then return flush() end
    return true
  end, { raw = raw })
  if n then n, err = flush() end
  if not n then
    -- Headers are gone already: the only honest signal left is an aborted response.
    ngx.log(ngx.ERR, "sfreports: CSV stream failed: ", tostring(err))
    return ngx.exit(ngx.ERROR)
  end
  return ngx.exit(ngx.OK)
end

-- GET /reports/<id>.csv
function M.report_csv(client_opts)
  local client = M.client(client_opts)
  local id = ngx.var.report_id
  local o = run_options()
  local report, err = client:run_sync(id, { details = o.details })
  if not report then return send_error(err) end
  return M.stream_csv(report, id .. ".csv", o.raw)
end

-- GET /reports/<id>.xlsx: Salesforce's formatted export (client:export), handed to the
-- caller piece by piece as it arrives from Salesforce, never held whole. The headers
-- (Content-Type, Content-Disposition with Salesforce's file name) are set when the first
-- byte is in, so an error before it (JSON from Salesforce, a bad id) is still answered as
-- JSON with a status; a failure after it can only abort the response.
function M.report_xlsx(client_opts)
  local client = M.client(client_opts)
  local id = ngx.var.report_id
  local started = false
  local info, err = client:export(id, {
    details = run_options().details,
    on_start = function(i)
      started = true
      ngx.status = 200
      ngx.header["Content-Type"] = i.content_type or "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
      local name = (i.filename or (id .. ".xlsx")):gsub('["\\%c]', "_")
      ngx.header["Content-Disposition"] = 'attachment; filename="' .. name .. '"'
    end,
    to = function(chunk)
      local ok, perr = ngx.print(chunk)
      if not ok then return nil, perr end
      ngx.flush(false)
      return true
    end,
  })
  if not info then
    if not started then return send_error(err) end
    ngx.log(ngx.ERR, "sfreports: xlsx export failed after it started: ", tostring(err))
    return ngx.exit(ngx.ERROR)
  end
  return ngx.exit(ngx.OK)
end

-- GET /reports/<id>/describe: passed through as Salesforce sent it (raw: no decode and
-- re-encode), e.g. for a front end that builds filter forms from it. A bad id is refused
-- by the client before any request.
function M.describe_json(client_opts)
  local client = M.client(client_opts)
  local text, err = client:describe(ngx.var.report_id, { raw = true })
  if not text then return send_error(err) end
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  ngx.print(text)
  return ngx.exit(200)
end

local function instance_json(inst)
  return {
    id = inst.id, report_id = inst.report_id, status = inst.status,
    request_date = inst.request_date, completion_date = inst.completion_date,
    status_url = "/reports/" .. inst.report_id .. "/runs/" .. inst.id,
    csv_url = "/reports/" .. inst.report_id .. "/runs/" .. inst.id .. ".csv",
  }
end

-- POST /reports/<id>/runs
function M.start_run(client_opts)
  local client = M.client(client_opts)
  local o = run_options()
  local inst, err = client:run_async(ngx.var.report_id, { details = o.details })
  if not inst then return send_error(err) end
  return send_json(202, instance_json(inst))
end

local function known_instance(client)
  return async.instance(client, ngx.var.report_id, { id = ngx.var.instance_id })
end

-- GET /reports/<id>/runs/<iid>: one status check, never waits.
function M.run_status(client_opts)
  local client = M.client(client_opts)
  local inst, err = client:poll(known_instance(client))
  if not inst then return send_error(err) end
  return send_json(200, instance_json(inst))
end

-- GET /reports/<id>/runs/<iid>.csv: waits for the run (polling with ngx.sleep, which
-- yields to nginx) and streams the result.
function M.run_csv(client_opts)
  local client = M.client(client_opts)
  local o = run_options()
  local report, err = client:wait(known_instance(client), { timeout = o.timeout or 60 })
  if not report then return send_error(err) end
  return M.stream_csv(report, ngx.var.report_id .. "-" .. ngx.var.instance_id .. ".csv", o.raw)
end

return M
