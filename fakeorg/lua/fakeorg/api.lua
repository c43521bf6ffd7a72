-- fakeorg.api: content handler for everything outside /__fake/: versions list, OAuth
-- token endpoint and the Analytics API under /services/data/vNN.N/analytics.
local util = require "fakeorg.util"
local state = require "fakeorg.state"
local out = require "fakeorg.out"
local faults = require "fakeorg.faults"
local catalog = require "fakeorg.catalog"
local engine = require "fakeorg.engine"
local describe = require "fakeorg.describe"
local instances = require "fakeorg.instances"
local oauth = require "fakeorg.oauth"
local xlsx = require "fakeorg.xlsx"
local dashboards = require "fakeorg.dashboards"
local reports = require "fakeorg.reports"
local ids = require "sfreports.ids"
local data = require "fakeorg.data"

local ngx = ngx
local null = util.null
local floor = math.floor

local api = {}

local MIN_VERSION, MAX_VERSION = 31, 66
local SEASONS = { "Summer", "Winter", "Spring" }

local function versions()
  local list = {}
  for v = MIN_VERSION, MAX_VERSION do
    local idx = v - MIN_VERSION
    local label = ("%s '%02d"):format(SEASONS[idx % 3 + 1], 14 + floor((idx + 2) / 3))
    list[#list + 1] = { label = label, url = ("/services/data/v%d.0"):format(v), version = ("%d.0"):format(v) }
  end
  return list
end

local function bearer()
  local h = ngx.var.http_authorization
  return h and h:match("^[Bb]earer%s+(.-)%s*$")
end

-- Request context -------------------------------------------------------------------------

-- The request body as text, or nil.
local function raw_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()
    if file then
      local f = io.open(file, "rb")
      body = f:read("*a")
      f:close()
    end
  end
  return body
end

local function read_json_body()
  local body = raw_body()
  if not body or body:match("^%s*$") then return nil end
  local value = util.decode(body)
  if type(value) ~= "table" then return false end
  return value
end

-- reportMetadata override from a POST body: nil (none), table, or false (bad JSON).
local function metadata_override()
  local body = read_json_body()
  if body == false then return false end
  if body == nil then return nil end
  local meta = body.reportMetadata
  if meta == nil or meta == null then return nil end
  if type(meta) ~= "table" then return false end
  return meta
end

local function bad_json()
  return out.error(400, "JSON_PARSER_ERROR", "The request body is either invalid or incomplete.")
end

local function api_error(err)
  return out.error(err.status or 400, err.code or "BAD_REQUEST", err.message, err.fields)
end

local function include_details(override)
  local arg = ngx.var.arg_includeDetails
  if arg then return arg == "true" end
  return override ~= nil and override.hasDetailRows == true
end

local function report_attributes(ctx, report)
  local url = ctx.base .. "/reports/" .. report.id
  return { type = "Report", reportId = report.id, reportName = report.name,
    describeUrl = url .. "/describe", instancesUrl = url .. "/instances" }
end

-- With sync_gate = n a sync run first waits until the org has received n sync runs since
-- the reset (30 s at most, so that a spec's mistake cannot hang the org).
local function sleep_for_sync(report)
  local gate = state.config("sync_gate")
  if gate > 0 and state.arrive("sync") < gate then state.wait_for_arrivals("sync", gate, 30) end
  local delay = state.config("sync_delay")
  if report.slow then delay = delay + state.config("slow_delay") end
  if delay > 0 then ngx.sleep(delay) end
end

-- Handlers ------------------------------------------------------------------------------

local function list_reports(ctx)
  local list = {}
  for _, r in ipairs(catalog.list) do
    if reports.find(r.id) then list[#list + 1] = reports.find(r.id) end
  end
  for i, r in ipairs(list) do
    local url = ctx.base .. "/reports/" .. r.id
    list[i] = { id = r.id, name = r.name, url = url, describeUrl = url .. "/describe",
      instancesUrl = url .. "/instances" }
  end
  return out.json(200, list)
end

local function run_sync(ctx, report)
  local override
  if ctx.method == "POST" then
    override = metadata_override()
    if override == false then return bad_json() end
  end
  local doc, err = engine.run(report, override, include_details(override))
  if not doc then return api_error(err) end
  state.bump("runs:sync")
  sleep_for_sync(report)
  if xlsx.wanted() then return xlsx.serve(report, doc) end -- the formatted export
  doc.head.attributes = report_attributes(ctx, report)
  return out.result(200, doc)
end

local function query(ctx)
  local override = metadata_override()
  if override == false or override == nil then return bad_json() end
  local rt = override.reportType
  local rtype = type(rt) == "table" and rt.type or rt
  if rtype ~= nil and rtype ~= null and rtype ~= "Opportunity" then
    return out.error(400, "BAD_REQUEST", ("The report type %s is not valid."):format(tostring(rtype)))
  end
  local base = { query = true, seed = catalog.query_dataset.seed, size = catalog.query_dataset.size,
    name = type(override.name) == "string" and override.name or "Query", developerName = null,
    detailColumns = {}, groupingsDown = {}, groupingsAcross = {}, aggregates = { "RowCount" } }
  local plan, err = engine.plan(base, override)
  if not plan then return api_error(err) end
  local doc = engine.execute(plan, include_details(override))
  state.bump("runs:sync")
  local url = ctx.base .. "/reports/null"
  doc.head.attributes = { type = "Report", reportId = null, reportName = base.name,
    describeUrl = url .. "/describe", instancesUrl = url .. "/instances" }
  return out.result(200, doc)
end

local function describe_report(ctx, report)
  return out.json(200, describe.report(report, report_attributes(ctx, report)))
end

local function create_instance(ctx, report)
  local override = metadata_override()
  if override == false then return bad_json() end
  if report.format ~= "MULTI_BLOCK" then
    local plan, err = engine.plan(report, override)
    if not plan then return api_error(err) end
  end
  local inst = instances.create(report, include_details(override), override)
  state.bump("runs:async")
  return out.json(200, instances.summary(inst, ctx.base))
end

local function instance_result(report, iid)
  local inst = instances.get(report, iid)
  if not inst then return out.not_found() end
  state.bump("poll:" .. iid)
  local attributes = instances.attributes(inst, report)
  if attributes.status ~= "Success" then
    return out.json(200, { attributes = attributes, allData = false, hasDetailRows = inst.details,
      reportMetadata = (engine.describe_parts(report)) })
  end
  local doc, err = engine.run(report, inst.override, inst.details)
  if not doc then return api_error(err) end
  doc.head.attributes = attributes
  return out.result(200, doc)
end

-- The describe of a report just created, cloned or saved.
local function saved_answer(ctx, def)
  return out.json(200, describe.report(def, report_attributes(ctx, def)))
end

local function create_report(ctx)
  local override = metadata_override()
  if override == false then return bad_json() end
  local clone_id = ngx.var.arg_cloneId
  local def, err
  if clone_id then
    def, err = reports.clone(clone_id, override)
  else
    def, err = reports.create(override)
  end
  if not def then return api_error(err) end
  return saved_answer(ctx, def)
end

local function save_report(ctx, report)
  local override = metadata_override()
  if override == false then return bad_json() end
  local def, err = reports.save(report, override)
  if not def then return api_error(err) end
  -- Salesforce deletes a report's running asynchronous instances when it is saved
  for _, inst in ipairs(instances.list(report, ctx.base)) do instances.delete(report, inst.id) end
  return saved_answer(ctx, def)
end

local function check_id(id, what)
  local ok = ids.check(id)
  if not ok then
    return out.error(400, "MALFORMED_ID", ("%s ID: id value of incorrect type: %s"):format(what, id), { "Id" })
  end
  return true
end

local function method_not_allowed(ctx, allowed)
  return out.error(405, "METHOD_NOT_ALLOWED",
    ("HTTP Method '%s' not allowed. Allowed are %s"):format(ctx.method, allowed))
end

local function report_routes(ctx, id, rest)
  if check_id(id, "Report") ~= true then return end
  local report = reports.find(id)
  if not report then return out.not_found() end
  local m = ctx.method
  if rest == "" then
    if m == "PATCH" then return save_report(ctx, report) end
    if m == "DELETE" then
      reports.delete(report)
      return out.no_content()
    end
    if m ~= "GET" and m ~= "POST" then return method_not_allowed(ctx, "GET,POST,PATCH,DELETE") end
    return run_sync(ctx, report)
  elseif rest == "/fields" then
    if m ~= "POST" then return method_not_allowed(ctx, "POST") end
    local body = read_json_body()
    if body == false then return bad_json() end
    local answer, err = reports.fields(report, body)
    if not answer then return api_error(err) end
    return out.json(200, answer)
  elseif rest == "/describe" then
    if m ~= "GET" then return method_not_allowed(ctx, "GET") end
    return describe_report(ctx, report)
  elseif rest == "/instances" then
    if m == "GET" then return out.json(200, instances.list(report, ctx.base)) end
    if m == "POST" then return create_instance(ctx, report) end
    return method_not_allowed(ctx, "GET,POST")
  end
  local iid = rest:match("^/instances/([^/]+)$")
  if not iid then return out.not_found() end
  if check_id(iid, "Report instance") ~= true then return end
  if m == "GET" then return instance_result(report, iid) end
  if m == "DELETE" then
    if instances.delete(report, iid) then return out.no_content() end
    return out.not_found()
  end
  return method_not_allowed(ctx, "GET,DELETE")
end

local function analytics(ctx, path)
  local m = ctx.method
  if path == "/reports" then
    if m == "POST" then return create_report(ctx) end
    if m ~= "GET" then return method_not_allowed(ctx, "GET,POST") end
    return list_reports(ctx)
  elseif path == "/reports/query" then
    if m ~= "POST" then return method_not_allowed(ctx, "POST") end
    return query(ctx)
  elseif path == "/reportTypes" then
    return out.json(200, describe.report_types(ctx.base))
  elseif path == "/reportTypes/Opportunity" then
    return out.json(200, { reportTypeMetadata = describe.report_type_metadata() })
  elseif path == "/filteroperators" then
    return out.json(200, describe.operator_map())
  end
  local id, rest = path:match("^/reports/([^/]+)(.*)$")
  if id then return report_routes(ctx, id, rest) end
  if path == "/dashboards" or path:match("^/dashboards/") then return dashboards.handle(ctx, path) end
  return out.not_found()
end

-- GET /services/data/vNN.N/limits: the org's limits as Salesforce lists them (Max and
-- Remaining). The daily API count is the one Sforce-Limit-Info reports; the hourly report
-- runs count the runs this server accepted since its last reset.
local function limits(used, limit)
  local s = state.stats()
  local function entry(max, n) return { Max = max, Remaining = math.max(max - n, 0) } end
  return out.json(200, {
    DailyApiRequests = entry(limit, used),
    ConcurrentAsyncGetReportInstances = entry(200, 0),
    ConcurrentSyncReportRuns = entry(20, 0),
    HourlyAsyncReportRuns = entry(1200, s.async_runs),
    HourlySyncReportRuns = entry(500, s.sync_runs),
    HourlyDashboardRefreshes = entry(200, 0),
    HourlyDashboardResults = entry(5000, 0),
    HourlyDashboardStatuses = entry(999999999, 0),
    DailyAsyncApexExecutions = entry(250000, 0),
    DailyBulkApiBatches = entry(15000, 0),
  })
end

function api.handle()
  local uri = ngx.var.uri
  state.request_started(uri)
  local fault = state.take_fault(ngx.var.request_uri, function()
    ngx.req.read_body()
    return ngx.req.get_body_data()
  end)
  if fault then return faults.serve(fault) end
  if uri == "/services/data" or uri == "/services/data/" then
    return out.json(200, versions())
  end
  if uri == "/services/oauth2/token" then return oauth.token() end
  if uri == "/services/oauth2/userinfo" then
    -- the user every valid token stands for (owner of the instances it creates)
    if not state.token_valid(bearer()) then return out.send(403, "Bad_OAuth_Token", "text/plain") end
    return out.json(200, { user_id = instances.OWNER_ID, organization_id = "00DFk0000000001AAA",
      preferred_username = "fake.user@example.com", name = data.owners[1].name })
  end
  local version, rest = uri:match("^/services/data/v(%d+%.%d+)(/.*)$")
  if not version then return out.not_found() end
  if tonumber(version) < MIN_VERSION then
    return out.error(410, "API_VERSION_RETIRED",
      ("Version %s of the API is no longer supported (versions 21.0 through 30.0 are retired)."):format(version))
  end
  local used, limit = state.api_usage()
  ngx.header["Sforce-Limit-Info"] = ("api-usage=%d/%d"):format(used, limit)
  if not state.token_valid(bearer()) then
    return out.error(401, "INVALID_SESSION_ID", "Session expired or invalid")
  end
  if rest == "/limits" or rest == "/limits/" then
    if ngx.req.get_method() ~= "GET" then return method_not_allowed({ method = ngx.req.get_method() }, "GET") end
    return limits(used, limit)
  end
  local path = rest:match("^/analytics(/.*)$")
  if not path then return out.not_found() end
  local ctx = { method = ngx.req.get_method(), base = "/services/data/v" .. version .. "/analytics" }
  reports.record(ctx.method, ngx.var.request_uri, raw_body())
  return analytics(ctx, (path:gsub("/+$", "")))
end

return api
