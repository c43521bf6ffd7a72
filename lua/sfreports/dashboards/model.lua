-- sfreports.dashboards.model: the dashboard object over a decoded Dashboard Results body
-- ({ componentData = [...], dashboardMetadata = {...} }), its components, and the status
-- body of a refresh. No request is made here (sfreports.dashboards sends them); whatever a
-- server sends is a value or a `decode` error, never a raise.
--
--   model.dashboard(decoded, dashboard_id?) -> dashboard | nil, decode err
--   dashboard.id, .name, .metadata (dashboardMetadata), .raw, .components (array),
--     .running_user ({ id, display_name } or nil), .dashboard_type, .filters (from the
--     metadata, see sfreports.dashboards.filters.list), .selected ({ filter1 = id ... }
--     the call asked for)
--   dashboard:component(id_or_title) -> component | nil  (id: 15 or 18 characters;
--     title: exact, then ignoring case; then the label below)
--   dashboard:failed() -> the components that have an `error`
--   component.id, .index, .title, .label (title, else header, else the report's name,
--     else the id), .type (metadata `type`, "Report"), .visualization (properties
--     .visualizationType: "Bar", "Metric", "Table"...), .report_id, .status =
--     { data_status, refresh_status, refresh_date, error_code, error_message,
--     error_severity }, .report (a sfreports.report object, or nil), .error (a
--     structured error: kind "api" with the component's Salesforce `code`, `message`,
--     `severity`, `component_id`; or kind "decode" when its reportResult is not a report),
--     .warning ({ code, message, severity } for a Warning on a component that has data),
--     .metadata (its dashboardMetadata.components entry), .raw (its componentData entry)
--   component:table() -> a row source for sfreports.writers: the report's detail rows
--     when it has some, else one row per fact-map entry (groups, then aggregates)
--   model.status(decoded, dashboard_id) -> { components = { { id, refresh_status,
--     refresh_date } }, running (any RUNNING), raw } | nil, decode err
local errors = require "sfreports.errors"
local json = require "sfreports.json"

local type, ipairs, tostring, setmetatable, floor, require = type, ipairs, tostring, setmetatable, math.floor, require
local format, lower, sub = string.format, string.lower, string.sub

local null = json.null
local M = {}

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

local function tbl(v)
  if type(v) == "table" then return v end
  return nil
end

-- A component error code as text (the docs give numbers: 201-212, 300-309, 403, 409).
local function code_text(v)
  if type(v) == "number" and v == floor(v) and v > -1e15 and v < 1e15 then return format("%d", v) end
  return str(v)
end

local function decode_error(message, fields)
  fields = fields or {}
  fields.retryable = false
  return nil, errors.new("decode", message, fields)
end

---------------------------------------------------------------------------
-- components

local Component = {}
Component.__index = Component
M.Component = Component

local function read_status(s)
  s = tbl(s) or {}
  return {
    data_status = str(s.dataStatus), refresh_status = str(s.refreshStatus), refresh_date = str(s.refreshDate),
    error_code = code_text(s.errorCode), error_message = str(s.errorMessage), error_severity = str(s.errorSeverity),
  }
end

-- The error (or warning) of a component from its status and its report.
local function judge(c, dashboard_id)
  local st = c.status
  local has_code = st.error_code or st.error_message
  if c.report and has_code and st.error_severity == "Warning" and st.data_status ~= "ERROR" then
    c.warning = { code = st.error_code, message = st.error_message, severity = st.error_severity }
    return
  end
  if st.data_status == "ERROR" or has_code then
    c.error = errors.new("api", format("dashboard component %s (%s) failed: %s", tostring(c.id), tostring(c.label),
      tostring(st.error_message or "no message")), { code = st.error_code, severity = st.error_severity,
      component_id = c.id, dashboard_id = dashboard_id, report_id = c.report_id, retryable = false })
    c.report = nil
  end
end

local function new_component(entry, index, meta_by_id, dashboard_id)
  local c = setmetatable({ index = index, raw = entry }, Component)
  if type(entry) ~= "table" then
    c.status = read_status(nil)
    c.label = "#" .. index
    local _, err = decode_error(format("dashboard %s: componentData entry %d is not an object",
      tostring(dashboard_id), index), { dashboard_id = dashboard_id })
    c.error = err
    return c
  end
  c.id = str(entry.componentId)
  local md = c.id and meta_by_id[c.id] or nil
  c.metadata = md
  c.title = md and str(md.title) or nil
  c.type = md and str(md.type) or nil
  local props = md and tbl(md.properties)
  c.visualization = props and str(props.visualizationType) or nil
  c.report_id = md and str(md.reportId) or nil
  c.status = read_status(entry.status)
  local result = entry.reportResult
  if result ~= nil and result ~= null then
    local report, rerr = require("sfreports.report").new(result)
    if report then
      c.report = report
      c.report_id = c.report_id or report.id
    else
      rerr.component_id, rerr.dashboard_id = c.id, dashboard_id
      rerr.message = format("dashboard component %s: %s", tostring(c.id), tostring(rerr.message))
      c.error = rerr
    end
  end
  c.label = c.title or (md and str(md.header)) or (c.report and c.report.name) or c.id or ("#" .. index)
  if not c.error then judge(c, dashboard_id) end
  return c
end

-- Rows for the writers (and the CLI): the report itself when it has detail rows, else a
-- report-like source (:columns(), :grouping_columns(), :rows()) with one row per fact-map
-- entry in report:groups() order: the entry's groups (a level it lacks is empty: subtotals
-- and the grand total), then its aggregates as cells. Charts, metrics and tables of groups
-- carry no detail rows; this is what they show. nil when the component has no report.
local Table = {}
Table.__index = Table

function Table:columns() return self._columns end
function Table:grouping_columns() return self._gcols end

function Table:rows()
  local entries, gcols, columns, i = self._report:groups(), self._gcols, self._columns, 0
  return function()
    i = i + 1
    local e = entries[i]
    if e == nil then return nil end
    local groups, cells = {}, {}
    for g, col in ipairs(gcols) do
      local list = col.axis == "down" and e.down or e.across
      groups[g] = (list and list[col.level]) or { value = null, label = null }
    end
    for a in ipairs(columns) do
      local agg = e.aggregates[a]
      cells[a] = agg and { value = agg.value, label = agg.label } or { value = null, label = null }
    end
    return { groups = groups, cells = cells, key = e.key, index = i }
  end
end

function Table:row_count() return #self._report:groups() end

function Component:table()
  local report = self.report
  if not report then return nil end
  if report.has_details then return report end
  local columns = {}
  for i, a in ipairs(report:aggregate_columns()) do
    columns[i] = { name = a.name, label = a.label, data_type = a.data_type }
  end
  -- aggregates cover every row, even of a report whose detail rows were cut at 2,000
  return setmetatable({ _report = report, _columns = columns, _gcols = report:grouping_columns(),
    format = report.format, all_data = true, truncated = false }, Table)
end

---------------------------------------------------------------------------
-- the dashboard

local Dashboard = {}
Dashboard.__index = Dashboard
M.Dashboard = Dashboard

-- The component with this id (15 or 18 characters) or title, or nil.
function Dashboard:component(which)
  if type(which) ~= "string" then return nil end
  for _, c in ipairs(self.components) do
    if c.id and (c.id == which or (#which == 15 and sub(c.id, 1, 15) == which)) then return c end
  end
  for _, c in ipairs(self.components) do
    if c.title == which then return c end
  end
  local w = lower(which)
  for _, c in ipairs(self.components) do
    if (c.title and lower(c.title) == w) or lower(tostring(c.label)) == w then return c end
  end
  return nil
end

function Dashboard:failed()
  local out = {}
  for _, c in ipairs(self.components) do
    if c.error then out[#out + 1] = c end
  end
  return out
end

function Dashboard:__tostring()
  return format("sfreports.dashboard(%s, %d components)", tostring(self.id), #self.components)
end

-- Builds the dashboard object from a decoded results body; dashboard_id is the id the
-- call asked for (kept when the body names none).
function M.dashboard(decoded, dashboard_id)
  if type(decoded) ~= "table" then
    return decode_error(format("dashboard %s: the results are not a JSON object", tostring(dashboard_id)),
      { dashboard_id = dashboard_id })
  end
  local md, data = decoded.dashboardMetadata, decoded.componentData
  if type(md) ~= "table" then
    return decode_error(format("dashboard %s: the results have no dashboardMetadata object", tostring(dashboard_id)),
      { dashboard_id = dashboard_id })
  end
  if data == nil or data == null then data = {} end
  if type(data) ~= "table" then
    return decode_error(format("dashboard %s: componentData is not an array", tostring(dashboard_id)),
      { dashboard_id = dashboard_id })
  end
  local attrs = tbl(md.attributes) or {}
  local id = str(md.id) or str(attrs.dashboardId) or dashboard_id
  local meta_by_id = {}
  for _, c in ipairs(tbl(md.components) or {}) do
    if type(c) == "table" and str(c.id) then meta_by_id[c.id] = c end
  end
  local ru = tbl(md.runningUser)
  local self = setmetatable({
    id = id, name = str(md.name) or str(attrs.dashboardName), metadata = md, raw = decoded,
    dashboard_type = str(md.dashboardType), status_url = str(attrs.statusUrl),
    running_user = ru and { id = str(ru.id), display_name = str(ru.displayName) } or nil,
    filters = require("sfreports.dashboards.filters").list(md),
    components = {},
  }, Dashboard)
  for i, entry in ipairs(data) do
    self.components[i] = new_component(entry, i, meta_by_id, id)
  end
  return self
end

---------------------------------------------------------------------------
-- status

-- Reads a Dashboard Status body ({ componentStatus = [...] }).
function M.status(decoded, dashboard_id)
  local list = type(decoded) == "table" and decoded.componentStatus
  if type(list) ~= "table" then
    return decode_error(format("dashboard %s: the status has no componentStatus array", tostring(dashboard_id)),
      { dashboard_id = dashboard_id })
  end
  local out = { dashboard_id = dashboard_id, components = {}, running = false, raw = decoded }
  for i, s in ipairs(list) do
    if type(s) ~= "table" then
      return decode_error(format("dashboard %s: componentStatus entry %d is not an object", tostring(dashboard_id), i),
        { dashboard_id = dashboard_id })
    end
    local st = str(s.refreshStatus)
    out.components[i] = { id = str(s.componentId), refresh_status = st, refresh_date = str(s.refreshDate) }
    if st ~= "IDLE" then out.running = true end
  end
  return out
end

return M
