-- sfreports.client: the user-facing client. It checks call options, turns them into one
-- request description per call, and sends it through its Sender (sfreports.send:
-- deadline, retries, token renewal, secret scrubbing) on a transport (the C engine, or
-- cosockets inside nginx). Report runs go through the transport's run_sync, run_async
-- and fetch_instance; decoded results go to the report model.
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local json = require "sfreports.json"
local observe = require "sfreports.observe"
local options = require "sfreports.options"
local secrets = require "sfreports.secrets"
local send = require "sfreports.send"
local transport = require "sfreports.transport"

local type, pairs, ipairs, tostring, setmetatable, next = type, pairs, ipairs, tostring, setmetatable, next
local format, match = string.format, string.match

local M = {}

M.DEFAULT_API_VERSION = options.DEFAULT_API_VERSION
M.DEFAULT_TIMEOUT = 150 -- seconds: above Salesforce's 2-minute limit on a sync run

local Client = {}
Client.__index = Client

-- A 404 says what was not found: Salesforce's own text ("The requested resource does not
-- exist") names nothing. Returns err.
function M.not_found(err, what)
  if type(err) == "table" and err.status == 404 and not err.not_found then
    err.not_found = what
    err.message = what .. " was not found: " .. tostring(err.message)
  end
  return err
end

-- Kept for callers of the first release (the rules live in sfreports.options).
function M.check_options(opts, allowed, where)
  return options.check(opts, allowed, where, 2)
end
M.check_instance_url = options.instance_url
M.parse_limit_info = send.parse_limit_info

---------------------------------------------------------------------------
-- construction

-- The options of the transport (and of an auth flow's token requests): connection
-- settings only, never a secret.
local function connection_options(opts)
  return {
    timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    stall_timeout = opts.stall_timeout, max_response = opts.max_response,
    cafile = opts.cafile, capath = opts.capath, verify = opts.verify, proxy = opts.proxy,
    user_agent = opts.user_agent, transport = opts.transport,
  }
end

-- The first token and instance URL: from the options, or from an auth flow.
-- Returns token, url, flow (or nil) | nil, err. observer: the client's sfreports.observe.
local function first_token(opts, bag, observer)
  if opts.auth == nil then
    local url, uerr = options.instance_url(opts.instance_url)
    if not url then return nil, uerr end
    local token = opts.access_token
    if type(token) ~= "string" or token == "" then
      return nil, errors.invalid("access_token is required (or give an auth = {...} flow)")
    end
    if match(token, "[%c%s]") then
      -- it would end the Authorization header early; the message never repeats the token
      return nil, errors.invalid("access_token must not contain spaces or control characters")
    end
    bag:add(token)
    return token, url
  end
  local auth = require "sfreports.auth"
  local flow, ferr = auth.new(opts.auth, connection_options(opts), bag, function(method, v, meta, started)
    observer:answer(method, v, meta, started) -- a token request (never its body)
  end)
  if not flow then return nil, ferr end
  local token, info = flow:fetch(nil)
  if not token then return nil, bag:scrub_error(info) end
  local url, uerr = options.instance_url(opts.instance_url or opts.auth.instance_url or info.instance_url)
  if not url then return nil, uerr end
  info.instance_url = url
  if opts.on_token then opts.on_token(token, info) end
  return token, url, flow
end

-- Creates a client. Returns client, or nil and an `invalid` (or, with an auth flow,
-- `auth`/network) error. Raises on misuse (unknown option, wrong type, bad number).
function M.new(opts)
  opts = options.check(opts, options.CLIENT, "sfreports.new", 2)
  local version, verr = options.api_version(opts.api_version or M.DEFAULT_API_VERSION)
  if not version then return nil, verr end
  local bag = secrets.new()
  local retries = opts.retries or options.DEFAULT_RETRIES
  local observer = observe.new(opts.on_request, bag, retries)
  local ends = opts.budget and observer.created + opts.budget or nil
  local token, url, flow = first_token(opts, bag, observer)
  if not token then return nil, url end
  local self = setmetatable({
    api_version = version, instance_url = url, limit_info = nil, secrets = bag,
    observer = observer, _describe_cache = {}, _flow = flow,
  }, Client)
  local conn = connection_options(opts)
  conn.base_url, conn.token, conn.api_version = url, token, version
  conn.transport = nil
  local t, kind = transport.new(conn, opts.transport)
  if not t then return nil, kind end
  self.transport, self.engine = t, kind
  self.settings = {
    sleep = opts.sleep, max_concurrent_sync = opts.max_concurrent_sync or options.DEFAULT_MAX_SYNC,
    max_concurrent_fetch = opts.max_concurrent_fetch or options.DEFAULT_MAX_FETCH,
  }
  self.sender = send.new({
    transport = t, bag = bag, sleep = opts.sleep,
    retries = retries,
    retry_base = opts.retry_base or options.DEFAULT_RETRY_BASE,
    timeout = opts.timeout or M.DEFAULT_TIMEOUT,
    observer = observer, ends = ends, budget = opts.budget,
    renew = flow and function(tr, left) return flow:fetch(tr, left) end or nil,
    on_token = opts.on_token,
    on_limits = function(parsed) self.limit_info = parsed end,
  })
  return self
end

-- Reads SF_INSTANCE_URL, SF_ACCESS_TOKEN and SF_API_VERSION; opts override.
function M.from_env(opts, getenv)
  getenv = getenv or os.getenv
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.instance_url = o.instance_url or getenv("SF_INSTANCE_URL")
  o.access_token = o.access_token or getenv("SF_ACCESS_TOKEN")
  o.api_version = o.api_version or getenv("SF_API_VERSION")
  if o.auth == nil then
    if not o.instance_url or o.instance_url == "" then
      return nil, errors.invalid("SF_INSTANCE_URL is not set")
    end
    if not o.access_token or o.access_token == "" then
      return nil, errors.invalid("SF_ACCESS_TOKEN is not set")
    end
  end
  return M.new(o)
end

function Client:__tostring()
  return format("sfreports.client(%s, v%s)", tostring(self.instance_url), self.api_version)
end

-- The auth flow's diagnostics ({ flow, login_url, alias, renewals }), or nil without one.
function Client:auth_info()
  if not self._flow then return nil end
  return self._flow:describe()
end

---------------------------------------------------------------------------
-- requests

-- The API path for a resource under analytics/.
function Client:path(fmt, ...)
  return "/services/data/v" .. self.api_version .. "/analytics/" .. format(fmt, ...)
end

local REQUEST_FIELDS = { method = "string", path = "string", body = "string|table",
  headers = "table", raw = "boolean", timeout = options.CLIENT.timeout }

-- One request with the client's policy (sfreports.send), its arguments already checked.
local function send_request(self, method, path, body, headers, raw, timeout)
  if type(body) == "table" then body = json.encode(body) end
  local value, err = self.sender:call(method, function(t, left)
    return t:request(method, path, body, headers, { raw = raw, timeout = left })
  end, timeout)
  if value == nil then return nil, M.not_found(err, (match(path, "^[^?]*"))) end
  return value, err
end

-- Sends one request description { method, path, body?, headers?, raw?, timeout? } with
-- the client's policy (sfreports.send). body: a string (sent as is) or a table (encoded
-- with sfreports.json). Returns value, meta or nil, err.
function Client:send(req)
  options.check(req, REQUEST_FIELDS, "client:send", 2)
  return send_request(self, req.method, req.path, req.body, req.headers, req.raw == true, req.timeout)
end

-- request() and request_raw(): the four arguments are checked in place (every internal
-- GET comes here); only misuse goes through send(), for its message.
local function request_with(self, method, path, body, headers, raw)
  local tb = type(body)
  if type(method) ~= "string" or type(path) ~= "string" or not (body == nil or tb == "string" or tb == "table")
      or not (headers == nil or type(headers) == "table") then
    return self:send({ method = method, path = path, body = body, headers = headers, raw = raw or nil })
  end
  return send_request(self, method, path, body, headers, raw, nil)
end

-- Sends one request through the transport with this client's policy.
function Client:request(method, path, body, headers)
  return request_with(self, method, path, body, headers, false)
end

-- Like request, but a successful answer is returned as the JSON text Salesforce sent,
-- undecoded: for passing it on (an nginx handler serving it, an archive) without paying
-- for a decode and an encode. Errors are decoded and classified as usual. The text is not
-- checked like a report model is (allData): whoever reads it must.
function Client:request_raw(method, path, body, headers)
  return request_with(self, method, path, body, headers, true)
end

local function check_id(id, what)
  local ok, why = ids.check(id, what)
  if not ok then return nil, errors.invalid(why) end
  return id
end

---------------------------------------------------------------------------
-- run options -> reportMetadata

M.RUN_OPTIONS = options.RUN

-- sfreports.run_options when the run options change filters, sorting, columns or
-- groupings, else nil. A run without options never loads those modules: compiling them
-- is a measurable part of a short-lived program's start-up (see bench/).
local function run_options_for(opts)
  if next(opts) == nil or not options.prepares(opts) then return nil end
  return require "sfreports.run_options"
end

-- The reportMetadata to POST for a run, or nil when the saved report runs as is.
function Client:run_metadata(report_id, opts)
  local md = opts.metadata
  local run_options = run_options_for(opts)
  if run_options then
    local describe, err = self:describe(report_id, { cached = true })
    if not describe then return nil, err end
    local changes, cerr = run_options.prepare(opts, describe)
    if not changes then return nil, cerr end
    local merged = {}
    for k, v in pairs(md or {}) do merged[k] = v end
    for k, v in pairs(changes) do merged[k] = v end
    md = merged
  end
  if md and opts.details ~= false and md.hasDetailRows == nil then
    local copy = {}
    for k, v in pairs(md) do copy[k] = v end
    copy.hasDetailRows = true
    md = copy
  end
  return md
end

local function body_for(md)
  if md == nil then return nil end
  return json.encode({ reportMetadata = md })
end

-- The run of a report as the engines take it: { id, kind = "sync"|"async", metadata =
-- JSON text or nil, details = boolean, method = the HTTP method the engine will use (for
-- the retry policy: a sync run is a GET without metadata, a POST with it; an async run
-- always POSTs) }, or nil and an error. Used by run_sync, run_async and run_many.
function Client:run_plan(id, opts, kind)
  local md, merr = self:run_metadata(id, opts)
  if merr then return nil, merr end
  local body = body_for(md)
  return { id = id, kind = kind, metadata = body, details = opts.details ~= false,
    method = (kind == "async" or body) and "POST" or "GET" }
end

-- Sends a planned run through the transport's run_sync / run_async; ropts extra are
-- passed to the engine (start = true for run_many). Returns decoded, meta | nil, err.
function Client:send_run(plan, timeout)
  local fn = plan.kind == "async" and "run_async" or "run_sync"
  local value, err = self.sender:call(plan.method, function(t, left)
    return t[fn](t, plan.id, plan.metadata, plan.details, { timeout = left })
  end, timeout)
  if value == nil then
    err.report_id = err.report_id or plan.id
    M.not_found(err, "report " .. plan.id)
  end
  return value, err
end

-- The report model over a decoded result, or nil and its `decode` error (with the ids).
local function to_report(decoded, report_id, instance_id)
  local report, err = require("sfreports.report").new(decoded)
  if not report then
    err.report_id = err.report_id or report_id
    err.instance_id = err.instance_id or instance_id
  end
  return report, err
end

---------------------------------------------------------------------------
-- report resources

-- Runs a report synchronously. Returns a report object, or nil, err. opts.timeout bounds
-- the whole call (default: the client's timeout).
function Client:run_sync(report_id, opts)
  opts = options.check(opts, options.RUN, "run_sync", 2)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local plan, perr = self:run_plan(id, opts, "sync")
  if not plan then return nil, perr end
  local decoded, rerr = self:send_run(plan, opts.timeout)
  if decoded == nil then return nil, rerr end
  return to_report(decoded, id)
end

-- Starts an asynchronous run. Returns an instance (id, status, dates), or nil, err.
function Client:run_async(report_id, opts)
  opts = options.check(opts, options.RUN, "run_async", 2)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local plan, perr = self:run_plan(id, opts, "async")
  if not plan then return nil, perr end
  local decoded, rerr = self:send_run(plan)
  if decoded == nil then return nil, rerr end
  local inst = require("sfreports.async").instance(self, id, decoded)
  if type(inst.id) ~= "string" or not ids.check(inst.id) then
    return nil, errors.new("decode", "the instance response of report " .. id .. " has no valid instance id",
      { report_id = id })
  end
  return inst
end

local function instance_status(decoded)
  local attrs = type(decoded) == "table" and decoded.attributes
  return type(attrs) == "table" and attrs.status or nil
end

-- The decoded results resource of an instance (the transport's fetch_instance), or nil,
-- err with report_id and instance_id. timeout: this call's budget.
function Client:fetch_instance_raw(report_id, instance_id, timeout)
  local decoded, err = self.sender:call("GET", function(t, left)
    return t:fetch_instance(report_id, instance_id, { timeout = left })
  end, timeout)
  if decoded == nil then
    err.report_id, err.instance_id = report_id, instance_id
    return nil, err
  end
  return decoded
end

-- Fetches the results of an instance. Returns a report, or nil, err: an instance that is
-- not finished is an `api` error with code INSTANCE_NOT_READY (retryable), one that
-- ended in Error is code INSTANCE_ERROR.
function Client:fetch_instance(report_id, instance_id)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local iid, ierr = check_id(instance_id, "instance id")
  if not iid then return nil, ierr end
  local decoded, rerr = self:fetch_instance_raw(id, iid)
  if decoded == nil then return nil, rerr end
  local status = instance_status(decoded)
  if status == "Error" then
    return nil, errors.new("api", "report instance " .. iid .. " ended in status Error",
      { code = "INSTANCE_ERROR", report_id = id, instance_id = iid, retryable = false })
  end
  if (status == "New" or status == "Running") or (status ~= nil and decoded.factMap == nil) then
    return nil, errors.new("api", format("report instance %s is not finished (status %s)", iid, status),
      { code = "INSTANCE_NOT_READY", report_id = id, instance_id = iid, retryable = true,
        instance_status = status })
  end
  return to_report(decoded, id, iid)
end

-- Lists the asynchronous runs of a report: an array of instances.
function Client:instances(report_id)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local decoded, rerr = self:request("GET", self:path("reports/%s/instances", id))
  if decoded == nil then return nil, rerr end
  local out = {}
  if type(decoded) ~= "table" then
    return nil, errors.new("decode", "the instance list of report " .. id .. " is not a JSON array",
      { report_id = id })
  end
  local async = require "sfreports.async"
  for i, d in ipairs(decoded) do out[i] = async.instance(self, id, d) end
  return out
end

-- Deletes an instance. Returns true, or nil, err.
function Client:delete_instance(report_id, instance_id)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local iid, ierr = check_id(instance_id, "instance id")
  if not iid then return nil, ierr end
  local ok, rerr = self:request("DELETE", self:path("reports/%s/instances/%s", id, iid))
  if not ok then return nil, rerr end
  return true
end

-- Describes a report (metadata, report type, extended metadata). With {cached=true} a
-- describe fetched earlier by this client is reused. With {raw=true} the answer is the
-- JSON text Salesforce sent (request_raw), neither taken from nor put in the cache.
function Client:describe(report_id, opts)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  if opts and opts.raw then
    return self:request_raw("GET", self:path("reports/%s/describe", id))
  end
  if opts and opts.cached and self._describe_cache[id] then
    return self._describe_cache[id]
  end
  local decoded, rerr = self:request("GET", self:path("reports/%s/describe", id))
  if decoded == nil then return nil, rerr end
  self._describe_cache[id] = decoded
  return decoded
end

-- Recently viewed reports: an array of { id, name, url, describeUrl, instancesUrl }.
function Client:list_reports()
  return self:request("GET", self:path("reports"))
end

-- Report types, by category.
function Client:report_types()
  return self:request("GET", self:path("reportTypes"))
end

-- Runs report metadata without saving a report (POST analytics/reports/query).
function Client:query(metadata, opts)
  if type(metadata) ~= "table" then
    error("sfreports: query expects a reportMetadata table, got " .. type(metadata), 2)
  end
  opts = options.check(opts, options.RUN, "query", 2)
  local md = {}
  for k, v in pairs(metadata.reportMetadata or metadata) do md[k] = v end
  local run_options = run_options_for(opts)
  if run_options then
    local changes, cerr = run_options.prepare(opts, { reportMetadata = md })
    if not changes then return nil, cerr end
    for k, v in pairs(changes) do md[k] = v end
  end
  if opts.details ~= false and md.hasDetailRows == nil then md.hasDetailRows = true end
  local decoded, err = self:request("POST", self:path("reports/query"), body_for(md))
  if decoded == nil then return nil, err end
  return to_report(decoded)
end

-- Methods that hand the call to the module of their family, which is loaded when one
-- of them is first called (each takes the client first). The README documents them:
--   poll(instance), wait(instance, opts)              sfreports.async
--   run_many(list, opts)                              sfreports.many
--   run_all(report_id, opts)                          sfreports.paging (past 2,000 rows)
--   export(report_id, opts), export_many(list, opts)  sfreports.export (Salesforce's .xlsx)
--   create_report, clone_report, save_report, delete_report, report_fields, report_type,
--   filter_operators                                  sfreports.lifecycle
--   dashboards, dashboard, dashboard_status, refresh_dashboard, describe_dashboard,
--   clone_dashboard, save_dashboard, delete_dashboard sfreports.dashboards
-- (a table of method -> function name per module; the requires stay literal, for
-- spec/require_graph_spec.lua)
local function delegate(load, names)
  for method, fname in pairs(names) do
    Client[method] = function(self, ...) return load()[fname](self, ...) end
  end
end
delegate(function() return require "sfreports.async" end, { poll = "poll", wait = "wait" })
delegate(function() return require "sfreports.many" end, { run_many = "run_many" })
delegate(function() return require "sfreports.paging" end, { run_all = "run_all" })
delegate(function() return require "sfreports.export" end, { export = "export", export_many = "export_many" })
delegate(function() return require "sfreports.lifecycle" end, {
  create_report = "create", clone_report = "clone", save_report = "save", delete_report = "delete",
  report_fields = "fields", report_type = "report_type", filter_operators = "filter_operators",
})
delegate(function() return require "sfreports.dashboards" end, {
  dashboards = "list", dashboard = "get", dashboard_status = "status", refresh_dashboard = "refresh",
  describe_dashboard = "describe", clone_dashboard = "clone", save_dashboard = "save",
  delete_dashboard = "delete",
})

-- Closes the transport (connections, handles). The client is unusable afterwards.
function Client:close()
  if self.transport then self.transport:close() end
end
Client.__close = Client.close

-- lifecycle (sfreports.lifecycle)

-- Drops this client's cached describe of a report (both id forms), so that the next run
-- with run options fetches it again. Returns true.
function Client:forget_describe(report_id)
  if type(report_id) == "string" and ids.check(report_id) then
    self._describe_cache[report_id] = nil
    self._describe_cache[report_id:sub(1, 15)] = nil
    self._describe_cache[ids.to18(report_id:sub(1, 15))] = nil
  end
  return true
end

-- observe (sfreports.observe)

-- Counts since the client was made: requests, retries, renewals, runs, polls, bytes, the
-- latest api usage Salesforce reported, and the runs this client made in the last hour
-- against the org's documented hourly limits (see README, "Seeing what it does").
function Client:usage()
  return self.observer:usage()
end

-- The org's limits (GET /services/data/vXX.X/limits), decoded: { DailyApiRequests =
-- { Max =, Remaining = }, HourlySyncReportRuns = ..., ... }, or nil, err.
function Client:limits(timeout)
  local decoded, err = self:send({ method = "GET", timeout = timeout,
    path = "/services/data/v" .. self.api_version .. "/limits" })
  if decoded == nil then return nil, err end
  if type(decoded) ~= "table" then
    return nil, errors.new("decode", "the limits resource did not answer with a JSON object")
  end
  return decoded
end

-- reuse (sfreports.reuse)
-- run_async with { reuse = seconds }: a finished instance of the same run (metadata, user)
-- that recent instead of a new run (inst.reused; inst:wait() returns its report at once).
local run_async_fresh = Client.run_async
function Client:run_async(report_id, opts)
  if type(opts) ~= "table" or (opts.reuse == nil and opts.owner == nil) then
    return run_async_fresh(self, report_id, opts)
  end
  options.check(opts, options.RUN, "run_async", 2, options.REUSE)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  return require("sfreports.reuse").run_async(self, run_async_fresh, id, opts)
end

-- The newest such instance within opts.within seconds (24 h): inst, report | false | nil, err.
function Client:latest(report_id, opts)
  opts = options.check(opts, options.RUN, "latest", 2, options.LATEST)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  return require("sfreports.reuse").latest(self, id, opts)
end

M.Client = Client

return M
