-- sfreports_handlers: example OpenResty / nginx handlers built on sfreports.
-- Inside a content handler sfreports talks to Salesforce over cosockets (non-blocking),
-- so one nginx worker serves many report requests at once. See README.md.
--   GET  /reports/<id>.csv               run the report (sync) and stream it as CSV;
--                                        ?all=1: every row, past the 2,000-row cap (run_all)
--   GET  /reports/<id>.xlsx              Salesforce's formatted export, streamed through
--   GET  /reports/<id>/describe          the report's describe, as Salesforce sent it
--   POST /reports/<id>/runs              start an async run; JSON {id, status, ...}
--   GET  /reports/<id>/runs/<iid>        status of an async run as JSON
--   GET  /reports/<id>/runs/<iid>.csv    wait for the run (ngx.sleep) and stream CSV
--   GET  /cached/reports/<id>.<fmt>      the report from the shared cache (sfreports.serve):
--                                        csv|json|jsonl|xlsx; ?stage=<name> filters on
--                                        STAGE_NAME (the only query option accepted)
-- Query options: raw=1 (values instead of labels), details=0, timeout=<s> (waits), all=1.
-- Never partial data presented as complete: a CSV answer carries `X-Report-Truncated:
-- true` when Salesforce returned only part of the detail rows (2,000 of more), `false`
-- when it is every row; a failure after the headers went out aborts the response (no
-- final chunk), which every HTTP client reports as an incomplete transfer.
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
  -- one JSON line per exchange with Salesforce in the error log (sfreports_log.lua)
  if opts.on_request == nil then opts.on_request = require("sfreports_log").on_request end
  local client, err = sfreports.from_env(opts)
  if not client then return send_error(err) end
  return client
end

local function flag(v) return v == "1" or v == "true" end

local function run_options()
  local args = ngx.req.get_uri_args()
  return {
    raw = flag(args.raw),
    details = args.details ~= "0" and args.details ~= "false",
    timeout = tonumber(args.timeout),
    all = flag(args.all),
  }
end

local function invalid(message)
  return send_json(400, { error = "invalid", message = message })
end

-- Streams CSV: write(sink) calls sink(chunk) for each piece and returns a count, or nil
-- and an error. Rows are formatted one at a time by the writer and handed to nginx in
-- ~64 KB pieces (ngx.print + a non-waiting ngx.flush), so memory stays flat.
-- `truncated` becomes the X-Report-Truncated header.
local function stream(filename, truncated, write)
  ngx.status = 200
  ngx.header["Content-Type"] = "text/csv; charset=utf-8"
  ngx.header["Content-Disposition"] = 'attachment; filename="' .. filename .. '"'
  ngx.header["X-Report-Truncated"] = truncated and "true" or "false"
  local buf, size = {}, 0
  local function flush()
    if size == 0 then return true end
    local ok, err = ngx.print(concat(buf))
    buf, size = {}, 0
    if not ok then return nil, err end
    ngx.flush(false)
    return true
  end
  local n, err = write(function(chunk)
    buf[#buf + 1] = chunk
    size = size + #chunk
    if size >= M.FLUSH_BYTES then return flush() end
    return true
  end)
  if n then n, err = flush() end
  if not n and not ngx.headers_sent and type(err) == "table" and err.kind then
    -- nothing went out yet (a page failed before the first flush): an ordinary error
    ngx.header["Content-Disposition"] = nil
    ngx.header["X-Report-Truncated"] = nil
    return send_error(err)
  end
  if not n then
    -- Headers are gone already: the only honest signal left is an aborted response (no
    -- final chunk), never a 200 that looks complete. The error goes to the log (its
    -- message never holds the token).
    ngx.log(ngx.ERR, "sfreports: CSV stream failed, response aborted: ", tostring(err))
    return ngx.exit(ngx.ERROR)
  end
  return ngx.exit(ngx.OK)
end

-- Streams a report (what run_sync, wait or fetch_instance return) as CSV, marked when
-- Salesforce returned only part of its detail rows.
function M.stream_csv(report, filename, raw)
  return stream(filename, report.truncated, function(sink)
    return writers.csv(report, sink, { raw = raw })
  end)
end

-- Streams every row of a report (client:run_all: page after page past the 2,000-row cap)
-- as CSV. The first page comes before the headers, so a report that cannot be run at all
-- is an ordinary JSON error; a later page that fails aborts the response.
function M.stream_all_csv(client, id, filename, raw)
  local paged, err = client:run_all(id)
  if not paged then return send_error(err) end
  return stream(filename, false, function(sink)
    return paged:write("csv", sink, { raw = raw })
  end)
end

-- GET /reports/<id>.csv
function M.report_csv(client_opts)
  local client = M.client(client_opts)
  local id = ngx.var.report_id
  local o = run_options()
  if o.all then
    if not o.details then return invalid("all=1 returns every detail row; details=0 cannot apply") end
    return M.stream_all_csv(client, id, id .. ".csv", o.raw)
  end
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
  if o.all then
    -- an asynchronous run has one result, capped like a synchronous one
    return invalid("all=1 pages a report with synchronous runs: use GET /reports/"
      .. ngx.var.report_id .. ".csv?all=1")
  end
  local report, err = client:wait(known_instance(client), { timeout = o.timeout or 60 })
  if not report then return send_error(err) end
  return M.stream_csv(report, ngx.var.report_id .. "-" .. ngx.var.instance_id .. ".csv", o.raw)
end

-- The cached endpoint: sfreports.serve answers from the lua_shared_dict `sfreports`
-- (ETag / 304, X-Report-Truncated, X-Cache: HIT | STALE | MISS | BYPASS) and runs the
-- report at most once per refresh across all workers. Visitors may set only what `allow`
-- lists: here one filter, checked by shape (any other parameter is ignored and does not
-- make a new cache entry).
M.CACHE = { max_age = 300, stale = 3600, wait = 30 }

local function stage_filter(value)
  if #value > 80 or value:find("[%c]") then return nil, "stage must be a short stage name" end
  return { filters = require("sfreports.filters").eq("STAGE_NAME", value) }
end

function M.cached_report()
  return require("sfreports.serve").report(ngx.var.report_id, {
    format = ngx.var.fmt, max_age = M.CACHE.max_age, stale = M.CACHE.stale, wait = M.CACHE.wait,
    allow = { stage = stage_filter },
    client = { on_request = require("sfreports_log").on_request },
  })
end

return M
