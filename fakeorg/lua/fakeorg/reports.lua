-- fakeorg.reports: the report lifecycle of the fake org: reports created (POST /reports),
-- cloned (POST /reports?cloneId=), saved (PATCH /reports/{id}) and deleted (DELETE), kept
-- in the fakeorg_state shared dict so that every worker sees them (a reset forgets them
-- and restores the catalog); the report fields resource; and the record of request bodies
-- (GET /__fake/bodies) that specs use to see the exact JSON a client sent.
local util = require "fakeorg.util"
local data = require "fakeorg.data"
local state = require "fakeorg.state"
local catalog = require "fakeorg.catalog"
local engine = require "fakeorg.engine"
local ids = require "sfreports.ids"

local ngx = ngx
local null = util.null

local reports = {}

local function dict() return ngx.shared.fakeorg_state end

local function present(v) return v ~= nil and v ~= null end

local function bad(message, fields)
  return nil, { status = 400, code = "BAD_REQUEST", message = message, fields = fields }
end

-- The stored definition of a report by its 18-character id: a created, cloned or saved
-- report, false when it was deleted, nil when the catalog's own entry stands.
local function stored(id18)
  local raw = dict():get("rep:" .. id18)
  if raw == nil then return nil end
  if raw == "deleted" then return false end
  return util.decode(raw)
end

local function store(def)
  dict():set("rep:" .. def.id, util.encode(def))
end

-- The report with this id (15 or 18 characters): a stored definition, else the catalog's
-- entry; nil when unknown or deleted.
function reports.find(id)
  if type(id) ~= "string" or not ids.check(id) then return nil end
  local id18 = ids.to18(#id == 18 and id:sub(1, 15) or id)
  local def = stored(id18)
  if def == false then return nil end
  if def then return def end
  return catalog.find(id)
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local function new_id()
  return data.make_id("00O", 9000000 + state.next_seq())
end

local function developer_name(name)
  return (name:gsub("[^%w]+", "_"))
end

local FORMATS = { TABULAR = true, SUMMARY = true, MATRIX = true }

-- Metadata keys a save or a creation takes (others are ignored, as the real API ignores
-- what it does not change).
local SAVED_KEYS = {
  "detailColumns", "groupingsDown", "groupingsAcross", "aggregates", "reportFilters",
  "reportBooleanFilter", "standardDateFilter", "sortBy", "topRows", "description", "folderId",
}

-- Applies metadata md over def (a copy). Returns the new definition, or nil and an error.
local function apply(def, md)
  if md.name ~= nil then
    if type(md.name) ~= "string" or not md.name:find("%S") then
      return bad("The report name can't be blank.", { "name" })
    end
    def.name = md.name
    def.developerName = developer_name(md.name)
  end
  local fmt = md.reportFormat
  if present(fmt) then
    if fmt == "MULTI_BLOCK" then return bad("You can't change reportFormat to MULTI_BLOCK.", { "reportFormat" }) end
    if not FORMATS[fmt] then
      return bad(("The report format %s is not valid."):format(tostring(fmt)), { "reportFormat" })
    end
    def.format = fmt
  end
  for _, k in ipairs(SAVED_KEYS) do
    if md[k] ~= nil then def[k] = md[k] end
  end
  local plan, err = engine.plan(def, nil)
  if not plan then
    err.fields = err.fields or { "reportMetadata" }
    return nil, err
  end
  -- keep what the engine made of it (normalised echo), so that describe shows the save
  def.detailColumns = {}
  for i, col in ipairs(plan.detail) do def.detailColumns[i] = col.name end
  return def
end

-- POST /reports: body reportMetadata. Returns the new definition or nil, err.
function reports.create(md)
  if type(md) ~= "table" then return bad("The request body has no reportMetadata.", { "reportMetadata" }) end
  if type(md.name) ~= "string" or not md.name:find("%S") then
    return bad("The report name can't be blank.", { "name" })
  end
  local rt = md.reportType
  local rtype = type(rt) == "table" and rt.type or rt
  if rtype ~= "Opportunity" then
    return bad(("The report type %s is not valid."):format(tostring(rtype)), { "reportType" })
  end
  local id = new_id()
  local function levels(v) return present(v) and type(v) == "table" and #v > 0 end
  local fmt = levels(md.groupingsAcross) and "MATRIX" or levels(md.groupingsDown) and "SUMMARY" or "TABULAR"
  local def = {
    key = "created_" .. id, id = id, name = md.name, developerName = developer_name(md.name),
    format = fmt,
    seed = catalog.query_dataset.seed, size = catalog.query_dataset.size,
    detailColumns = {}, groupingsDown = {}, groupingsAcross = {}, aggregates = { "RowCount" },
    order = 1000,
  }
  local saved, err = apply(def, md)
  if not saved then return nil, err end
  store(saved)
  return saved
end

-- POST /reports?cloneId=: a copy of the source under a new id and name.
function reports.clone(source_id, md)
  if not ids.check(source_id) then
    return nil, { status = 400, code = "MALFORMED_ID",
      message = ("Report ID: id value of incorrect type: %s"):format(source_id), fields = { "Id" } }
  end
  local source = reports.find(source_id)
  if not source then
    return nil, { status = 404, code = "NOT_FOUND", message = "The requested resource does not exist" }
  end
  if source.format == "MULTI_BLOCK" then return bad("A joined report can't be cloned through this API.") end
  if type(md) ~= "table" or type(md.name) ~= "string" or not md.name:find("%S") then
    return bad("The report name can't be blank.", { "name" })
  end
  local def = copy(source)
  def.id = new_id()
  def.key = "clone_" .. def.id
  def.slow, def.async = nil, nil
  local saved, err = apply(def, { name = md.name, folderId = md.folderId })
  if not saved then return nil, err end
  store(saved)
  return saved
end

-- PATCH /reports/{id}: saves md over the report; its instances are deleted.
function reports.save(report, md)
  if type(md) ~= "table" then return bad("The request body has no reportMetadata.", { "reportMetadata" }) end
  if report.format == "MULTI_BLOCK" then
    return bad("Only hasDetailRows, hasRecordCount, showSubtotals and showGrandTotal can be changed"
      .. " on a joined report.")
  end
  local saved, err = apply(copy(report), md)
  if not saved then return nil, err end
  store(saved)
  return saved
end

function reports.delete(report)
  dict():set("rep:" .. report.id, "deleted")
end

-- POST /reports/{id}/fields: the columns the report can use, by display group; with
-- intersectWith, the fields the reports share (one report type here: all of them).
-- The shape is invented (no public example): displayGroups, equivalentFields,
-- equivalentFieldIndices, mergedGroups.
function reports.fields(report, body)
  local others = {}
  local with = type(body) == "table" and body.intersectWith or nil
  if present(with) then
    if type(with) ~= "table" then return bad("intersectWith must be an array of report ids.", { "intersectWith" }) end
    for i, oid in ipairs(with) do
      if type(oid) ~= "string" or not ids.check(oid) then
        return nil, { status = 400, code = "MALFORMED_ID",
          message = ("Report ID: id value of incorrect type: %s"):format(tostring(oid)), fields = { "intersectWith" } }
      end
      if not reports.find(oid) then
        return nil, { status = 404, code = "NOT_FOUND", message = "The requested resource does not exist" }
      end
      others[i] = oid
    end
  end
  local groups, by_label, indices, equivalent = {}, {}, {}, {}
  for i, col in ipairs(data.column_list) do
    local g = by_label[col.category]
    if not g then
      g = { label = col.category, columns = {} }
      by_label[col.category] = g
      groups[#groups + 1] = g
    end
    g.columns[col.name] = { label = col.label, dataType = col.dataType }
    indices[col.name] = i - 1
    local eq = { [report.id] = col.name }
    for _, oid in ipairs(others) do eq[oid] = col.name end
    equivalent[i] = eq
  end
  local shared = #others > 0
  return { displayGroups = groups, equivalentFields = shared and equivalent or util.arr({}),
    equivalentFieldIndices = shared and indices or {}, mergedGroups = shared and groups or util.arr({}) }
end

-- Request bodies -------------------------------------------------------------------------

local KEEP = 200          -- bodies kept (the oldest go first)
local MAX_BODY = 262144   -- bytes of one body kept

-- Records the request (method, URI, body text or null) of an API call.
function reports.record(method, uri, body)
  local d = dict()
  local n = d:incr("body_seq", 1, 0)
  if body and #body > MAX_BODY then body = body:sub(1, MAX_BODY) end
  d:set("body:" .. n, util.encode({ n = n, method = method, uri = uri, body = body or null }))
  d:delete("body:" .. (n - KEEP))
end

-- The recorded requests, oldest first: [{n, method, uri, body}].
function reports.bodies()
  local d = dict()
  local last = d:get("body_seq") or 0
  local list = {}
  for n = math.max(1, last - KEEP + 1), last do
    local raw = d:get("body:" .. n)
    if raw then list[#list + 1] = util.decode(raw) end
  end
  return util.arr(list)
end

return reports
