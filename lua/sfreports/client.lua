-- sfreports.client: the user-facing client. It validates call options, turns them into
-- requests on a transport (the C engine, or cosockets inside nginx), and hands decoded
-- results to the report model. Policy lives here (retries, token renewal, limits);
-- the transport only moves bytes and classifies responses.
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local json = require "sfreports.json"
local transport = require "sfreports.transport"

local type, pairs, ipairs, tostring, setmetatable, next = type, pairs, ipairs, tostring, setmetatable, next
local format, match, lower, gsub = string.format, string.match, string.lower, string.gsub

local M = {}

M.DEFAULT_API_VERSION = "67.0"

local Client = {}
Client.__index = Client

---------------------------------------------------------------------------
-- option checking (misuse raises; bad values are `invalid` errors)

local CLIENT_OPTIONS = {
  instance_url = "string", access_token = "string", api_version = "string|number",
  timeout = "number", connect_timeout = "number", stall_timeout = "number",
  max_response = "number", cafile = "string", capath = "string", verify = "boolean",
  proxy = "string", user_agent = "string", sleep = "function", auth = "table",
  on_token = "function", retries = "number", retry_base = "number", transport = "string",
  max_concurrent_sync = "number", max_concurrent_fetch = "number",
}

local function check_options(opts, allowed, where)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("sfreports: %s expects an options table, got %s", where, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then
      error(format("sfreports: unknown option '%s' for %s", tostring(k), where), 3)
    end
    if not match(want, type(v)) then
      error(format("sfreports: option '%s' for %s must be a %s, got %s", k, where, want, type(v)), 3)
    end
  end
  return opts
end
M.check_options = check_options

local function is_loopback(host)
  host = lower(host)
  return host == "localhost" or host == "[::1]" or host == "::1"
    or match(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Returns the normalised instance URL, or nil and an `invalid` error naming the problem.
function M.check_instance_url(url)
  if type(url) ~= "string" or url == "" then
    return nil, errors.invalid("instance_url is required (e.g. https://yourdomain.my.salesforce.com)")
  end
  if match(url, "[%c%s]") then
    return nil, errors.invalid("instance_url must not contain spaces or control characters")
  end
  local scheme, host, rest = match(url, "^(%a[%w+.-]*)://([^/?#]+)(.*)$")
  if not scheme then
    return nil, errors.invalid(format("instance_url %q is not an absolute URL", url))
  end
  scheme = lower(scheme)
  if rest ~= "" and rest ~= "/" then
    return nil, errors.invalid(format("instance_url %q must have no path: give only the scheme and host", url))
  end
  if match(host, "@") then
    return nil, errors.invalid("instance_url must not contain user information")
  end
  local hostname = match(host, "^(%[[^%]]+%])") or match(host, "^([^:]+)")
  if scheme == "http" then
    if not is_loopback(hostname) then
      return nil, errors.invalid(format(
        "instance_url %q uses plain http, allowed only for a loopback host; use https", url))
    end
  elseif scheme ~= "https" then
    return nil, errors.invalid(format("instance_url %q must use https", url))
  end
  return scheme .. "://" .. host
end

local function normalise_version(v)
  v = gsub(tostring(v), "^[vV]", "")
  if match(v, "^%d+$") then v = v .. ".0" end
  if not match(v, "^%d+%.%d$") then
    return nil, errors.invalid(format("api_version %q is not a version like 67.0", v))
  end
  return v
end

---------------------------------------------------------------------------
-- construction

-- Creates a client. Returns client, or nil and an `invalid` error.
function M.new(opts)
  check_options(opts, CLIENT_OPTIONS, "sfreports.new")
  opts = opts or {}
  if opts.retries and (opts.retries < 0 or opts.retries ~= math.floor(opts.retries)) then
    error("sfreports: option 'retries' for sfreports.new must be a whole number >= 0", 2)
  end
  if opts.retry_base and opts.retry_base < 0 then
    error("sfreports: option 'retry_base' for sfreports.new must not be negative", 2)
  end
  -- the client keeps its options without the token: a dump of the client shows no secret
  local kept = {}
  for k, v in pairs(opts) do
    if k ~= "access_token" then kept[k] = v end
  end
  local self = setmetatable({
    api_version = nil, instance_url = nil, limits = nil,
    _describe_cache = {}, _opts = kept, _token_generation = 0,
  }, Client)
  local version, verr = normalise_version(opts.api_version or M.DEFAULT_API_VERSION)
  if not version then return nil, verr end
  self.api_version = version
  local token = opts.access_token
  if opts.auth == nil then
    local url, uerr = M.check_instance_url(opts.instance_url)
    if not url then return nil, uerr end
    self.instance_url = url
    if type(token) ~= "string" or token == "" then
      return nil, errors.invalid("access_token is required (or give an auth = {...} flow)")
    end
    if match(token, "[%c%s]") then
      -- it would end the Authorization header early; the message never repeats the token
      return nil, errors.invalid("access_token must not contain spaces or control characters")
    end
  end
  self._token = token
  if opts.auth ~= nil then
    local ok, err = self:_init_auth(opts)
    if not ok then return nil, err end
  end
  return self:_open_transport()
end

function Client:_open_transport()
  local opts = self._opts
  local t, err = transport.new({
    base_url = self.instance_url, token = self._token, api_version = self.api_version,
    timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    stall_timeout = opts.stall_timeout, max_response = opts.max_response,
    cafile = opts.cafile, capath = opts.capath, verify = opts.verify, proxy = opts.proxy,
    user_agent = opts.user_agent,
  }, opts.transport)
  self._token = nil -- from now on only the transport holds it
  if not t then return nil, err end
  self.transport = t
  return self
end

-- Authentication flows live in sfreports.auth; loaded only when asked for.
function Client:_init_auth(opts)
  local auth = require "sfreports.auth"
  return auth.attach(self, opts)
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

---------------------------------------------------------------------------
-- requests

-- Sforce-Limit-Info: "api-usage=10018/100000; api-bursts=1/750" -> { ["api-usage"] = {used, max} }
local function parse_limit_info(s)
  local out = { raw = s }
  for name, used, max in s:gmatch("([%w%-_]+)=(%d+)/(%d+)") do
    out[name] = { used = tonumber(used), max = tonumber(max) }
  end
  return out
end
M.parse_limit_info = parse_limit_info

function Client:_note_meta(meta)
  if meta and meta.limit_info then
    self.limits = parse_limit_info(meta.limit_info)
  end
end

-- The API path for a resource under analytics/.
function Client:path(fmt, ...)
  return "/services/data/v" .. self.api_version .. "/analytics/" .. format(fmt, ...)
end

-- Sends one request through the transport with this client's retry and renewal policy.
-- body: nil, a string (sent as is) or a table (encoded with sfreports.json).
function Client:request(method, path, body, headers)
  return self:_request(method, path, body, headers, false)
end

-- Like request, but a successful answer is returned as the JSON text Salesforce sent,
-- undecoded: for passing it on (an nginx handler serving it, an archive) without paying
-- for a decode and an encode. Errors are decoded and classified as usual. The text is not
-- checked like a report model is (allData): whoever reads it must.
function Client:request_raw(method, path, body, headers)
  return self:_request(method, path, body, headers, true)
end

function Client:_request(method, path, body, headers, raw)
  if type(body) == "table" then body = json.encode(body) end
  local value, meta = self:_send(method, path, body, headers, raw)
  if value == nil then return nil, meta end
  self:_note_meta(meta)
  return value, meta
end

-- Every request goes through here: sfreports.retry decides whether and when to try
-- again; each try renews the token once on an auth failure when the client can.
function Client:_send(method, path, body, headers, raw)
  local retry = require "sfreports.retry"
  return retry.call(self, method, function()
    return self:_send_authed(method, path, body, headers, raw)
  end)
end

-- One try with the current token; on an `auth` error a client that can renew its token
-- renews it (once per token generation, however many requests failed with it) and
-- sends the request again.
function Client:_send_authed(method, path, body, headers, raw)
  local generation = self._token_generation
  local value, meta = self.transport:request(method, path, body, headers, raw)
  if value == nil and meta.kind == "auth" and self._auth then
    local ok, err = self:_renew_token(generation)
    if not ok then return nil, err end
    return self.transport:request(method, path, body, headers, raw)
  end
  return value, meta
end

-- Renews the token unless another request already did since `generation` was read.
-- Returns true, or nil and an `auth` error.
function Client:_renew_token(generation)
  if generation ~= self._token_generation then return true end
  local auth = require "sfreports.auth"
  return auth.renew(self)
end

local function check_id(id, what)
  local ok, why = ids.check(id, what)
  if not ok then return nil, errors.invalid(why) end
  return id
end

---------------------------------------------------------------------------
-- run options -> reportMetadata

local RUN_OPTIONS = {
  details = "boolean", metadata = "table", filters = "table", logic = "string",
  replace_filters = "boolean|table", date_filter = "string|table", sort = "string|table",
  top = "number|table", columns = "table", groupings = "table",
  wait = "table|boolean", timeout = "number", sleep = "function", yield = "boolean",
  delete = "boolean|string", async = "boolean", id = "string",
  poll_interval = "number", poll_max = "number", key = "string", page_size = "number",
  on_page = "function", concurrency = "number",
}
M.RUN_OPTIONS = RUN_OPTIONS

-- Builds the reportMetadata to POST for a run, or nil when the saved report runs as is.
-- sfreports.filters when the run options change filters, sorting, columns or groupings,
-- else nil. A run without options never loads that (large) module: compiling it is a
-- measurable part of a short-lived program's start-up (see bench/).
local function filters_for(opts)
  if next(opts) == nil then return nil end
  local filters = require "sfreports.filters"
  if filters.needs_describe(opts) then return filters end
  return nil
end

function Client:_run_metadata(report_id, opts)
  local md = opts.metadata
  local filters = filters_for(opts)
  if filters then
    local describe, err = self:describe(report_id, { cached = true })
    if not describe then return nil, err end
    local changes, cerr = filters.prepare(opts, describe)
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

local function details_flag(opts)
  return opts.details ~= false and "true" or "false"
end

local function body_for(md)
  if md == nil then return nil end
  return json.encode({ reportMetadata = md })
end

-- The request of a report run, as { method, path, body }, or nil and an error: a sync run
-- is a GET without metadata and a POST with it; an async run posts an instance. Used by
-- run_sync, run_async and sfreports.async's run_many.
function Client:_run_request(id, opts, async)
  local md, merr = self:_run_metadata(id, opts)
  if merr then return nil, merr end
  local path = self:path("reports/%s%s?includeDetails=%s", id, async and "/instances" or "", details_flag(opts))
  if async then return { method = "POST", path = path, body = body_for(md) or "" } end
  return { method = md and "POST" or "GET", path = path, body = body_for(md) }
end

local function to_report(decoded)
  return require("sfreports.report").new(decoded)
end

---------------------------------------------------------------------------
-- report resources

-- Runs a report synchronously. Returns a report object, or nil, err.
function Client:run_sync(report_id, opts)
  opts = check_options(opts, RUN_OPTIONS, "run_sync")
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local req, merr = self:_run_request(id, opts, false)
  if not req then return nil, merr end
  local decoded, rerr = self:request(req.method, req.path, req.body)
  if not decoded then
    rerr.report_id = rerr.report_id or id
    return nil, rerr
  end
  return to_report(decoded)
end

-- Starts an asynchronous run. Returns an instance (id, status, dates), or nil, err.
function Client:run_async(report_id, opts)
  opts = check_options(opts, RUN_OPTIONS, "run_async")
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local req, merr = self:_run_request(id, opts, true)
  if not req then return nil, merr end
  local decoded, rerr = self:request(req.method, req.path, req.body)
  if not decoded then
    rerr.report_id = rerr.report_id or id
    return nil, rerr
  end
  return self:_instance(id, decoded)
end

-- Wraps a decoded instance description; sfreports.async gives it wait/poll.
function Client:_instance(report_id, decoded)
  local async = require "sfreports.async"
  return async.instance(self, report_id, decoded)
end

local function instance_status(decoded)
  local attrs = type(decoded) == "table" and decoded.attributes
  return type(attrs) == "table" and attrs.status or nil
end

-- Fetches the results of an instance. Returns a report, or nil, err: an instance that is
-- not finished is an `api` error with code INSTANCE_NOT_READY (retryable), one that
-- ended in Error is code INSTANCE_ERROR.
function Client:fetch_instance(report_id, instance_id)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local iid, ierr = check_id(instance_id, "instance id")
  if not iid then return nil, ierr end
  local decoded, rerr = self:request("GET", self:path("reports/%s/instances/%s", id, iid))
  if not decoded then
    rerr.report_id, rerr.instance_id = id, iid
    return nil, rerr
  end
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
  return to_report(decoded)
end

-- Lists the asynchronous runs of a report: an array of instances.
function Client:instances(report_id)
  local id, err = check_id(report_id, "report id")
  if not id then return nil, err end
  local decoded, rerr = self:request("GET", self:path("reports/%s/instances", id))
  if not decoded then return nil, rerr end
  local out = {}
  for i, d in ipairs(decoded) do out[i] = self:_instance(id, d) end
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
  if not decoded then return nil, rerr end
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
  opts = check_options(opts, RUN_OPTIONS, "query")
  local md = {}
  for k, v in pairs(metadata.reportMetadata or metadata) do md[k] = v end
  local filters = filters_for(opts)
  if filters then
    local changes, cerr = filters.prepare(opts, { reportMetadata = md })
    if not changes then return nil, cerr end
    for k, v in pairs(changes) do md[k] = v end
  end
  if opts.details ~= false and md.hasDetailRows == nil then md.hasDetailRows = true end
  local decoded, err = self:request("POST", self:path("reports/query"), body_for(md))
  if not decoded then return nil, err end
  return to_report(decoded)
end

-- One status check of an instance, never waiting: instance (updated) and, on Success,
-- the report; or nil, err.
function Client:poll(instance)
  return require("sfreports.async").poll(self, instance)
end

-- Waits for an instance to finish and returns its report (see sfreports.async.wait).
function Client:wait(instance, opts)
  return require("sfreports.async").wait(self, instance, opts)
end

-- Runs many reports with their requests in flight together (see sfreports.async.run_many):
-- list entries are report ids or { id = ..., async = true|false, <run options> }.
-- Returns reports, errs (arrays in input order) and stats.
function Client:run_many(list, opts)
  return require("sfreports.async").run_many(self, list, opts)
end

-- Every row of a report past the 2,000-row cap, page by page (see sfreports.paging):
-- returns a paged report (`:rows()`, `:write()`, `.report` for totals), or nil, err.
function Client:run_all(report_id, opts)
  return require("sfreports.paging").run_all(self, report_id, opts)
end

-- Closes the transport (connections, handles). The client is unusable afterwards.
function Client:close()
  if self.transport then self.transport:close() end
end
Client.__close = Client.close

M.Client = Client

return M
