-- sfreports.options: every option a caller can pass, with its type and range, checked in
-- one place. Misuse raises naming the option ("sfreports: option 'timeout' for
-- sfreports.new must be a finite number > 0"); values that come from the environment
-- or a server (an instance URL, an API version) are `invalid` errors instead.
--
-- A spec maps an option name to a rule: either a type pattern ("string|table") or a
-- table { "number", min =, max =, above =, integer = true } whose numeric bounds are
-- inclusive (min/max) or exclusive (above). Every number is checked finite before any
-- bound: NaN passes every comparison, and infinity would reach C casts.
local errors = require "sfreports.errors"

local type, pairs, tostring, error, setmetatable = type, pairs, tostring, error, setmetatable
local format, match, lower, gsub, gmatch = string.format, string.match, string.lower, string.gsub, string.gmatch
local floor, huge = math.floor, math.huge

local M = {}

M.DEFAULT_API_VERSION = "67.0"
M.DEFAULT_RETRIES = 3
M.DEFAULT_RETRY_BASE = 0.5
M.DEFAULT_MAX_SYNC = 20        -- Salesforce: 20 concurrent synchronous runs
M.DEFAULT_MAX_FETCH = 200      -- Salesforce: 200 concurrent requests for async results

-- The engines (src/request.c) check their own options too, with the same bounds: a
-- client checks first so that the message names the call (and refuses 0, which the
-- engines read as "no limit": a client's timeout is the budget of every call).
local SECONDS = { "number", above = 0, max = 2147483 }     -- a positive duration
local WAIT_SECONDS = { "number", min = 0, max = 2147483 }  -- a duration that may be zero
local COUNT = { "number", integer = true, min = 1, max = 1e6 }

M.CLIENT = {
  instance_url = "string", access_token = "string", api_version = "string|number",
  timeout = SECONDS, connect_timeout = SECONDS, stall_timeout = SECONDS,
  max_response = { "number", integer = true, min = 1, max = 2 ^ 48 },
  cafile = "string", capath = "string", verify = "boolean",
  proxy = "string", user_agent = "string", sleep = "function", auth = "table",
  on_token = "function", retries = { "number", integer = true, min = 0, max = 100 },
  retry_base = { "number", min = 0, max = 60 }, transport = "string",
  max_concurrent_sync = COUNT, max_concurrent_fetch = COUNT,
  on_request = "function", budget = SECONDS,
}

M.RUN = {
  details = "boolean", metadata = "table", filters = "table", logic = "string",
  replace_filters = "boolean|table", date_filter = "string|table", sort = "string|table",
  top = "number|table", columns = "table", groupings = "table",
  aggregates = "table", replace_aggregates = "boolean|table",
  wait = "table|boolean", timeout = WAIT_SECONDS, sleep = "function", yield = "boolean",
  delete = "boolean|string", async = "boolean", id = "string",
  poll_interval = SECONDS, poll_max = SECONDS, key = "string", page_size = "number",
  on_page = "function", concurrency = "number",
}

-- The run options sfreports.run_options.prepare turns into report metadata (a run with
-- none of them sends the saved report as is and never loads that module).
M.PREPARED = { "filters", "logic", "replace_filters", "date_filter", "sort", "top", "columns", "groupings",
  "aggregates", "replace_aggregates" }

-- True when opts (a table) hold any of them (replace_* only when true).
function M.prepares(opts)
  local prepared = M.PREPARED
  for i = 1, #prepared do
    local name = prepared[i]
    local v = opts[name]
    if v ~= nil and (v ~= false or (name ~= "replace_filters" and name ~= "replace_aggregates")) then
      return true
    end
  end
  return false
end

-- Recurring access (sfreports.reuse): run_async's `reuse` window (0: never reuse) and
-- latest's `within`, in seconds (Salesforce keeps results 24 hours); `owner`: the current
-- user's id, when the caller knows it (else it is asked once per client).
M.REUSE = { reuse = { "number", min = 0, max = 86400 }, owner = "string" }
M.LATEST = { within = { "number", above = 0, max = 86400 }, owner = "string" }

-- sfreports.serve: serve.report / key / purge / schedule entries.
M.SERVE = {
  dict = "string", max_age = SECONDS, stale = WAIT_SECONDS, format = "string", raw = "boolean",
  run = "table", allow = "table", async = "boolean", client = "table", wait = WAIT_SECONDS,
  timeout = SECONDS, lock_ttl = SECONDS,
}

M.WAIT = {
  timeout = WAIT_SECONDS, poll_interval = SECONDS, poll_max = SECONDS,
  sleep = "function", yield = "boolean", delete = "boolean|string",
}

-- Dashboards (sfreports.dashboards): a dashboard's results, a refresh, and waiting on it.
M.DASHBOARD = {
  filters = "table", running_user = "string", components = "table", timeout = SECONDS,
}
M.DASHBOARD_REFRESH = { filters = "table", running_user = "string", timeout = SECONDS }
M.DASHBOARD_WAIT = {
  timeout = WAIT_SECONDS, poll_interval = SECONDS, poll_max = SECONDS,
  sleep = "function", yield = "boolean", components = "table",
}
M.DASHBOARD_SAVE = { name = "string", description = "string", filters = "table", metadata = "table" }
-- Options of run_all (sfreports.paging; a concurrency above 20 is capped there). sort and
-- top cannot apply, paging orders rows by its key: paging refuses them with its own message.
M.RUN_ALL = {
  filters = "table", logic = "string", replace_filters = "boolean|table", date_filter = "string|table",
  columns = "table", groupings = "table", metadata = "table", details = "boolean",
  aggregates = "table", replace_aggregates = "boolean|table",
  key = "string|table", strategy = "string", concurrency = { "number", integer = true, min = 1, max = 1e6 },
  on_page = "function", max_runs = { "number", integer = true, min = 1, max = 1e6 },
  on_progress = "function",
}

-- Options of run_many itself (the rest are run options, defaults for every entry).
M.MANY = {
  max_concurrent_sync = COUNT, max_concurrent_fetch = COUNT,
  sleep = "function", yield = "boolean",
}

-- client:export (sfreports.export): the run options that shape a formatted export, where
-- the file goes, and the call's budget. export_many takes the same as defaults for every
-- entry, plus how many exports run at once.
M.EXPORT = {
  details = "boolean", metadata = "table", filters = "table", logic = "string",
  replace_filters = "boolean|table", date_filter = "string|table", sort = "string|table",
  top = "number|table", columns = "table", groupings = "table",
  timeout = SECONDS, to = "string|function|userdata|table", on_start = "function", id = "string",
}
M.EXPORT_MANY = { concurrency = { "number", integer = true, min = 1, max = 20 } }

M.DELETE_VALUES = { [true] = true, [false] = true, after = true, timeout = true }

local function describe_bounds(rule)
  local parts = {}
  if rule.integer then parts[#parts + 1] = "a whole number" else parts[#parts + 1] = "a finite number" end
  if rule.above then parts[#parts + 1] = "> " .. rule.above end
  if rule.min then parts[#parts + 1] = ">= " .. rule.min end
  if rule.max and rule.max < 2 ^ 53 then parts[#parts + 1] = "<= " .. format("%.14g", rule.max) end
  return parts[1] .. (parts[2] and " " .. table.concat(parts, " and ", 2) or "")
end

-- Why number v breaks rule, or nil.
local function number_problem(v, rule)
  if v ~= v or v == huge or v == -huge then return true end
  if rule.integer and v ~= floor(v) then return true end
  if rule.above and v <= rule.above then return true end -- (NaN was refused above)
  if rule.min and v < rule.min then return true end
  if rule.max and v > rule.max then return true end
  return nil
end

local NO_BOUNDS = {}

-- The type names a rule allows, as a set: "string|table" -> { string = true, table = true }.
-- Worked out once per rule (options are checked on every call, some per request).
local kinds_of_rule = setmetatable({}, { __mode = "k" })
local function kinds_of(rule)
  local kinds = {}
  for name in gmatch(type(rule) == "table" and rule[1] or rule, "[^|]+") do kinds[name] = true end
  kinds_of_rule[rule] = kinds
  return kinds
end

-- Raises: value v (of type t) does not fit rule; level is the caller's level for error().
local function refuse(name, v, t, rule, where, level)
  local bounds = type(rule) == "table" and rule or NO_BOUNDS
  if not kinds_of(rule)[t] then
    error(format("sfreports: option '%s' for %s must be a %s, got %s", name, where,
      type(rule) == "table" and rule[1] or rule, t), level + 1)
  end
  error(format("sfreports: option '%s' for %s must be %s, got %s", name, where,
    describe_bounds(bounds), tostring(v)), level + 1)
end

-- Checks an options table against spec (or several specs, any of which may name an
-- option). Returns opts (an empty table for nil). Raises on misuse: not a table, an
-- unknown name, a wrong type, a number out of range or not finite.
function M.check(opts, spec, where, level, spec2)
  level = (level or 1) + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("sfreports: %s expects an options table, got %s", where, type(opts)), level)
  end
  for k, v in pairs(opts) do
    local rule = spec[k] or (spec2 and spec2[k])
    if not rule then
      error(format("sfreports: unknown option '%s' for %s", tostring(k), where), level)
    end
    local t = type(v)
    if not (kinds_of_rule[rule] or kinds_of(rule))[t]
      or (t == "number" and number_problem(v, type(rule) == "table" and rule or NO_BOUNDS)) then
      refuse(k, v, t, rule, where, level)
    end
  end
  if opts.delete ~= nil and (spec.delete or (spec2 and spec2.delete)) and not M.DELETE_VALUES[opts.delete] then
    error(format("sfreports: option 'delete' for %s must be true, false, \"after\" or \"timeout\", got %q",
      where, tostring(opts.delete)), level)
  end
  return opts
end

---------------------------------------------------------------------------
-- values from the environment or a server: `invalid` errors, not raises

local function is_loopback(host)
  host = lower(host)
  return host == "localhost" or host == "[::1]" or host == "::1"
    or match(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end
M.is_loopback = is_loopback

-- Returns the normalised instance URL (scheme://host[:port]), or nil and an `invalid`
-- error naming the problem.
function M.instance_url(url)
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
  local hostname, port = match(host, "^(%[[^%]]+%])(.*)$")
  if not hostname then hostname, port = match(host, "^([^:]*)(.*)$") end
  if hostname == "" or not (port == "" or match(port, "^:%d+$")) then
    return nil, errors.invalid(format("instance_url %q has no valid host name and port", url))
  end
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

-- "v67", "67", 67 -> "67.0"; or nil and an `invalid` error.
function M.api_version(v)
  v = gsub(tostring(v), "^[vV]", "")
  if match(v, "^%d+$") then v = v .. ".0" end
  if not match(v, "^%d+%.%d$") then
    return nil, errors.invalid(format("api_version %q is not a version like 67.0", v))
  end
  return v
end

return M
