-- fakeorg.dashboards: the dashboards of the fake org (see fakeorg/README.md, Dashboards).
-- The JSON follows the reference's §10 and the docs fixtures docs_dashboard_*.json:
-- results { componentData = [{ componentId, reportResult, status }], dashboardMetadata },
-- status { componentStatus = [...] }, refresh PUT -> { statusUrl }. Components are the
-- catalog's reports run by fakeorg.engine with the selected filter options (and, with a
-- running user, that owner's rows only). Refreshes, clones, saves and deletes live in
-- the fakeorg_state shared dict (all workers see them; /__fake/reset clears them), and
-- every dashboard request is logged in the stats (`dashboard_log`).
local util = require "fakeorg.util"
local data = require "fakeorg.data"
local state = require "fakeorg.state"
local out = require "fakeorg.out"
local catalog = require "fakeorg.catalog"
local engine = require "fakeorg.engine"
local ids = require "sfreports.ids"

local ngx = ngx
local null, arr = util.null, util.arr

local M = {}

local INITIAL_REFRESH = "2026-01-05T08:00:00.000+0000"

local function id18(s) return ids.to18(s) end

local function component(id15, title, report_key, vis, details, failing)
  return { id = id18(id15), title = title, report = report_key, visualization = vis,
    details = details, failing = failing }
end

local REGION = { name = "Region", column = "BILLING_COUNTRY", options = {
  { id = id18("0ICFk00000I0001"), alias = "EMEA", operation = "equals", value = "Deutschland,Schweiz,UK,Polska" },
  { id = id18("0ICFk00000I0002"), alias = "Americas", operation = "equals", value = "USA,Canada,Brasil" },
  { id = id18("0ICFk00000I0003"), alias = "APAC", operation = "equals", value = "日本" },
} }
local DEAL_SIZE = { name = "AMOUNT", label = "Deal Size", column = "AMOUNT", options = {
  { id = id18("0ICFk00000I0011"), alias = "Large", operation = "greaterThan", value = "100000" },
  { id = id18("0ICFk00000I0012"), operation = "lessThan", value = "10000" },
  { id = id18("0ICFk00000I0013"), alias = "Mid-size", operation = "between", startValue = "10000",
    endValue = "100000" },
} }

local FAILURE = { code = 302, severity = "Warning",
  message = "The component can't be displayed because the source report exceeded the time limit." }

-- key, 15-char id, name, components, filters, running user may change
local DASHBOARDS = {
  { "sales", "01ZFk00000G0001", "Sales Overview", {
      component("01aFk00000H0001", "Pipeline by Stage", "summary_1", "Bar", false),
      component("01aFk00000H0002", "Pipeline Matrix", "matrix", "Column", false),
      component("01aFk00000H0003", "Open Deals", "tabular_small", "FlexTable", true),
      component("01aFk00000H0004", "Slow Source", "slow", "Metric", false, FAILURE),
    }, { REGION, DEAL_SIZE }, true },
}
for n = 1, 6 do
  DASHBOARDS[#DASHBOARDS + 1] = { "team" .. n, ("01ZFk00000G01%02d"):format(n), ("Team %d Pipeline"):format(n), {
    component(("01aFk00000H1%02d1"):format(n), "Team Stages", "summary_1", "Donut", false),
    component(("01aFk00000H1%02d2"):format(n), "Team Deals", "tabular_small", "FlexTable", true),
  }, {}, false }
end

local by_id, catalog_list = {}, {}
for i, d in ipairs(DASHBOARDS) do
  local def = { key = d[1], id = id18(d[2]), name = d[3], components = d[4], filters = d[5],
    can_change_user = d[6], order = i }
  by_id[def.id], by_id[d[2]] = def, def
  catalog_list[i] = def
end
M.list = catalog_list

local function dict() return ngx.shared.fakeorg_state end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. ".000+0000"
end

local function log(method, id, what, extra)
  local n = state.next_seq()
  local entry = { n = n, method = method, id = id, what = what, t = ngx.now(), args = ngx.var.args }
  for k, v in pairs(extra or {}) do entry[k] = v end
  ngx.shared.fakeorg_stats:set("dlog:" .. ("%09d"):format(n), util.encode(entry))
end

-- The definition behind an id (a clone: its source's, with its own id and name), or nil.
local function find(id)
  local full = #id == 15 and id18(id) or id
  if dict():get("dash_deleted:" .. full) then return nil end
  local def = by_id[full]
  local clone = dict():get("dash_clone:" .. full)
  if clone then
    clone = util.decode(clone)
    local src = by_id[clone.source]
    def = setmetatable({ id = full, name = clone.name, clone_of = src.id }, { __index = src })
  end
  if not def then return nil end
  local saved = dict():get("dash_saved:" .. full)
  if saved then
    saved = util.decode(saved)
    def = setmetatable({ id = def.id, name = saved.name or def.name, description = saved.description,
      sticky = saved.sticky }, { __index = def })
  end
  return def
end

-- Refresh state of a dashboard: running (bool), the last refresh date. A refresh runs for
-- dashboard_refresh_delay seconds. With dashboard_refresh_gate = n it also runs until the org
-- has received n refresh PUTs since the reset (accepted or refused), and for the delay after
-- that: specs that need refreshes to meet one in progress say so instead of racing a clock.
local function refresh_state(def)
  local d = dict()
  local ends = d:get("dash_refresh:" .. def.id)
  if not ends then return false, INITIAL_REFRESH end
  if state.arrivals("dashboard_refresh") < state.config("dashboard_refresh_gate") then
    return true, d:get("dash_refreshed:" .. def.id) or INITIAL_REFRESH
  end
  local opened = d:get("dash_gate_opened")
  if opened then ends = math.max(ends, opened + state.config("dashboard_refresh_delay")) end
  if ngx.now() < ends then return true, d:get("dash_refreshed:" .. def.id) or INITIAL_REFRESH end
  return false, iso(ends)
end

---------------------------------------------------------------------------
-- parameters

local function bad(message, code)
  return nil, { status = 400, code = code or "BAD_REQUEST", message = message }
end

-- The selected option per filter (filter1..3 parameters, else the sticky selection)
-- and the running user, from the query string. Returns sel, user | nil, err.
local function parameters(def, args)
  local sel = {}
  for i, f in ipairs(def.filters) do
    local want = args["filter" .. i] or (def.sticky and def.sticky["filter" .. i])
    if type(want) == "table" then return bad("The selected filter item isn't valid.") end
    if want then
      for _, o in ipairs(f.options) do
        if o.id == want or o.id:sub(1, 15) == want then sel[i] = o end
      end
      if not sel[i] then return bad("The selected filter item isn't valid.") end
    end
  end
  for i = #def.filters + 1, 3 do
    if args["filter" .. i] then return bad("The selected filter item isn't valid.") end
  end
  local user
  local ru = args.runningUser
  if ru then
    if not def.can_change_user then return bad("You don't have permission to change the running user.") end
    for _, o in ipairs(data.owners) do
      if o.id == ru or o.id:sub(1, 15) == ru then user = o end
    end
    if not user then return bad("The running user for this dashboard is inactive or invalid.") end
  end
  return sel, user
end

-- The report filters a component runs with.
local function report_filters(def, sel, user)
  local filters = {}
  for i, f in ipairs(def.filters) do
    local o = sel[i]
    if o then
      if o.operation == "between" then
        filters[#filters + 1] = { column = f.column, operator = "greaterOrEqual", value = o.startValue }
        filters[#filters + 1] = { column = f.column, operator = "lessOrEqual", value = o.endValue }
      else
        filters[#filters + 1] = { column = f.column, operator = o.operation, value = o.value }
      end
    end
  end
  if user then filters[#filters + 1] = { column = "FULL_NAME", operator = "equals", value = user.name } end
  return filters
end

---------------------------------------------------------------------------
-- bodies

local function status_url(ctx, def)
  return ctx.base .. "/dashboards/" .. def.id .. "/status"
end

local function metadata(ctx, def, sel, user)
  local comps, filters, layout = {}, {}, {}
  for i, c in ipairs(def.components) do
    local report = catalog.by_key[c.report]
    comps[i] = { id = c.id, reportId = report.id, title = c.title, header = null, footer = null, type = "Report",
      componentData = i - 1, properties = { visualizationType = c.visualization, aggregates = arr(
        (function() local a = {}; for j, n in ipairs(report.aggregates) do a[j] = { name = n } end; return a end)()),
        groupings = null, maxRows = null, useReportChart = false } }
    layout[i] = i - 1
  end
  for i, f in ipairs(def.filters) do
    local opts = {}
    for j, o in ipairs(f.options) do
      opts[j] = { id = o.id, alias = o.alias or null, operation = o.operation, value = o.value or null,
        startValue = o.startValue or null, endValue = o.endValue or null }
    end
    filters[i] = { name = f.name, label = f.label, options = opts, selectedOption = sel[i] and sel[i].id or null }
  end
  local owner = user or data.owners[1]
  return {
    attributes = { dashboardId = def.id, dashboardName = def.name, statusUrl = status_url(ctx, def),
      type = "Dashboard" },
    id = def.id, name = def.name, developerName = (def.name:gsub("[^%w]+", "_")), description = def.description or null,
    folderId = "00lFk0000000001AAA", dashboardType = def.can_change_user and "SpecifiedUser" or "LoggedInUser",
    canChangeRunningUser = def.can_change_user, canUseStickyFilter = true,
    runningUser = { id = owner.id, displayName = owner.name },
    components = arr(comps), filters = arr(filters), layout = { columns = { { components = arr(layout) } } },
  }
end

-- A report result as a table (fakeorg.out streams them; here it is part of a document).
local function result_table(doc)
  local r = util.shallow_copy(doc.head)
  r.attributes = null
  local fm = {}
  for _, e in ipairs(doc.entries) do
    local entry = { aggregates = arr(e.aggregates) }
    if e.rows then
      local rows, cols = {}, e.columns or doc.columns
      for i, rec in ipairs(e.rows) do
        local cells = {}
        for j, col in ipairs(cols) do
          local v, l = data.cell(col, rec[col.name])
          cells[j] = { value = v, label = l }
        end
        rows[i] = { dataCells = arr(cells) }
      end
      entry.rows = arr(rows)
    end
    fm[e.key] = entry
  end
  r.factMap = fm
  return r
end

local function component_data(def, c, sel, user, running, refreshed)
  local st = { dataStatus = "DATA", errorCode = null, errorMessage = null, errorSeverity = null,
    refreshDate = refreshed, refreshStatus = running and "RUNNING" or "IDLE" }
  if c.failing then
    st.dataStatus, st.errorCode = "ERROR", c.failing.code
    st.errorMessage, st.errorSeverity = c.failing.message, c.failing.severity
    return { componentId = c.id, reportResult = null, status = st }
  end
  local report = catalog.by_key[c.report]
  local doc, err = engine.run(report, { reportFilters = report_filters(def, sel, user) }, c.details)
  if not doc then
    st.dataStatus, st.errorCode, st.errorMessage, st.errorSeverity = "ERROR", 201, err.message, "Error"
    return { componentId = c.id, reportResult = null, status = st }
  end
  return { componentId = c.id, reportResult = result_table(doc), status = st }
end

local function results(ctx, def, args, only)
  local sel, user = parameters(def, args)
  if not sel then return out.error(user.status, user.code, user.message) end
  local running, refreshed = refresh_state(def)
  local list = {}
  for _, c in ipairs(def.components) do
    if not only or only[c.id] then list[#list + 1] = component_data(def, c, sel, user, running, refreshed) end
  end
  return out.json(200, { componentData = arr(list), dashboardMetadata = metadata(ctx, def, sel, user) })
end

---------------------------------------------------------------------------
-- handlers

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body or body:match("^%s*$") then return {} end
  local v = util.decode(body)
  if type(v) ~= "table" then return nil end
  return v
end

local function bad_json()
  return out.error(400, "JSON_PARSER_ERROR", "The request body is either invalid or incomplete.")
end

local function component_results(ctx, def, args)
  local body = read_body()
  if not body or type(body.componentIds) ~= "table" or #body.componentIds == 0 then return bad_json() end
  local only = {}
  for _, cid in ipairs(body.componentIds) do
    local found
    for _, c in ipairs(def.components) do
      if type(cid) == "string" and (c.id == cid or c.id:sub(1, 15) == cid) then found = c end
    end
    if not found then
      return out.error(400, "BAD_REQUEST", ("The component ID %s isn't valid."):format(tostring(cid)))
    end
    only[found.id] = true
  end
  return results(ctx, def, args, only)
end

-- Decides a refresh PUT: "running", "limit" or "started" (and starts it). Called under the
-- org's refresh lock: the fake org has several workers, and two PUTs at once must not both
-- find the dashboard idle.
local function claim_refresh(def)
  local d = dict()
  local running = refresh_state(def)
  -- counted after the check, so that the PUT which opens the gate still meets the refresh
  if state.arrive("dashboard_refresh") == state.config("dashboard_refresh_gate") then
    d:set("dash_gate_opened", ngx.now())
  end
  if running then return "running" end
  d:add("dash_refreshes", 0, 3600)
  if (d:get("dash_refreshes") or 0) >= state.config("dashboard_refresh_limit") then return "limit" end
  d:incr("dash_refreshes", 1, 0)
  d:set("dash_refreshed:" .. def.id, select(2, refresh_state(def)))
  d:set("dash_refresh:" .. def.id, ngx.now() + state.config("dashboard_refresh_delay"))
  return "started"
end

local function refresh(ctx, def, args)
  local sel, user = parameters(def, args)
  if not sel then return out.error(user.status, user.code, user.message) end
  local outcome = state.locked("dashboard_refresh", claim_refresh, def)
  if outcome == "running" then
    return out.error(400, "BAD_REQUEST", "You can't refresh this dashboard. A refresh is already in progress.")
  elseif outcome == "limit" then
    return out.error(400, "LIMIT_EXCEEDED", ("You can't refresh this dashboard: your org reached its limit of %d"
      .. " dashboard refreshes per hour. Try again later."):format(state.config("dashboard_refresh_limit")))
  end
  return out.json(200, { statusUrl = status_url(ctx, def) })
end

local function status(def)
  local running, refreshed = refresh_state(def)
  local list = {}
  for i, c in ipairs(def.components) do
    list[i] = { componentId = c.id, refreshDate = refreshed, refreshStatus = running and "RUNNING" or "IDLE" }
  end
  return out.json(200, { componentStatus = arr(list) }), running
end

local function save(ctx, def, args)
  local body = read_body()
  if not body then return bad_json() end
  local md = body.dashboardMetadata
  if md ~= nil and type(md) ~= "table" then return bad_json() end
  md = md or {}
  if md.name ~= nil and (type(md.name) ~= "string" or md.name == "") then
    return out.error(400, "BAD_REQUEST", "The dashboard name isn't valid.")
  end
  local saved = util.decode(dict():get("dash_saved:" .. def.id) or "{}")
  if type(md.name) == "string" then saved.name = md.name end
  if type(md.description) == "string" then saved.description = md.description end
  if args.isStickyFilterSave == "true" then
    local sel, err = parameters(def, args)
    if not sel then return out.error(err.status, err.code, err.message) end
    saved.sticky = {}
    for i, o in pairs(sel) do saved.sticky["filter" .. i] = o.id end
  end
  dict():set("dash_saved:" .. def.id, util.encode(saved))
  return results(ctx, find(def.id), {}, nil)
end

local function clone(ctx, args)
  local src = args.cloneId and find(args.cloneId)
  if not src then
    if args.cloneId and not ids.check(args.cloneId) then
      return out.error(400, "MALFORMED_ID", ("Dashboard ID: id value of incorrect type: %s"):format(args.cloneId),
        { "Id" })
    end
    if args.cloneId then return out.not_found() end
    return out.error(400, "BAD_REQUEST", "Creating a dashboard needs a cloneId in the fake org.")
  end
  local body = read_body()
  if not body then return bad_json() end
  local new_id = id18(data.make_id("01Z", 500000 + state.next_seq()):sub(1, 15))
  local name = type(body.name) == "string" and body.name or ("Copy of " .. src.name)
  dict():set("dash_clone:" .. new_id, util.encode({ source = src.clone_of or src.id, name = name }))
  log("POST", new_id, "clone", { source = src.id })
  local def = find(new_id)
  return out.json(200, metadata(ctx, def, {}, nil))
end

local function method_not_allowed(method, allowed)
  return out.error(405, "METHOD_NOT_ALLOWED", ("HTTP Method '%s' not allowed. Allowed are %s"):format(method, allowed))
end

-- path: "/dashboards..." (under analytics/).
function M.handle(ctx, path)
  local m = ctx.method
  local args = ngx.req.get_uri_args()
  if path == "/dashboards" then
    if m == "GET" then
      local entries = {}
      for _, d in ipairs(M.visible()) do
        entries[#entries + 1] = { id = d.id, name = d.name, statusUrl = status_url(ctx, d),
          url = ctx.base .. "/dashboards/" .. d.id }
      end
      log(m, "-", "list")
      return out.json(200, arr(entries))
    end
    if m == "POST" then return clone(ctx, args) end
    return method_not_allowed(m, "GET,POST")
  end
  local id, rest = path:match("^/dashboards/([^/]+)(.*)$")
  if not id then return out.not_found() end
  if not ids.check(id) then
    return out.error(400, "MALFORMED_ID", ("Dashboard ID: id value of incorrect type: %s"):format(id), { "Id" })
  end
  local def = find(id)
  if not def then return out.not_found() end
  if rest == "/status" then
    if m ~= "GET" then return method_not_allowed(m, "GET") end
    local running = refresh_state(def)
    log(m, def.id, "status", { running = running })
    return (status(def))
  elseif rest == "/describe" then
    if m ~= "GET" then return method_not_allowed(m, "GET") end
    log(m, def.id, "describe")
    return out.json(200, metadata(ctx, def, {}, nil))
  elseif rest ~= "" then
    return out.not_found()
  end
  log(m, def.id, ({ GET = "results", POST = "components", PUT = "refresh", PATCH = "save", DELETE = "delete" })[m]
    or "other")
  if m == "GET" then return results(ctx, def, args, nil) end
  if m == "POST" then return component_results(ctx, def, args) end
  if m == "PUT" then return refresh(ctx, def, args) end
  if m == "PATCH" then return save(ctx, def, args) end
  if m == "DELETE" then
    dict():set("dash_deleted:" .. def.id, true)
    return out.no_content()
  end
  return method_not_allowed(m, "GET,POST,PUT,PATCH,DELETE")
end

-- The dashboards a list shows: the catalog's and clones, without deleted ones.
function M.visible()
  local shown = {}
  for _, d in ipairs(catalog_list) do
    local def = find(d.id)
    if def then shown[#shown + 1] = def end
  end
  for _, key in ipairs(dict():get_keys(0)) do
    local cid = key:match("^dash_clone:(.*)$")
    local def = cid and find(cid)
    if def then shown[#shown + 1] = def end
  end
  return shown
end

return M
