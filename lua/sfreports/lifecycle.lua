-- sfreports.lifecycle: reports as objects you change: create, clone, save (PATCH), delete;
-- the fields a report can use, one report type's describe, the filter operators. The
-- client's methods (create_report, clone_report, save_report, delete_report,
-- report_fields, report_type, filter_operators) call these with the client first.
--
--   local d = assert(client:create_report{ name = "Pipeline", reportFormat = "TABULAR",
--     reportType = { type = "Opportunity" }, detailColumns = { "OPPORTUNITY_NAME", "AMOUNT" } })
--   local copy = assert(client:clone_report(d.reportMetadata.id, { name = "Pipeline (EMEA)" }))
--   assert(client:save_report(copy.reportMetadata.id, { filters = { F.eq("BILLING_COUNTRY", "DE") },
--     aggregates = { F.sum("AMOUNT") } }))
--   assert(client:delete_report(copy.reportMetadata.id))
--
-- Salesforce deletes a report's running asynchronous instances when the report is saved
-- (salesforce-analytics-api.md §2). Saving or deleting a report drops the client's cached
-- describe of it (client:forget_describe), so that the next run checks against the saved
-- report. Ids are checked before any request (an `invalid` error); an unknown option
-- raises; whatever Salesforce refuses is its `api` error (status, code, and `fields` when
-- the answer names them); a report that is gone is an `api` error with status 404.
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local json = require "sfreports.json"
local options = require "sfreports.options"

local type, pairs, ipairs, next, error = type, pairs, ipairs, next, error
local getmetatable, setmetatable = getmetatable, setmetatable
local format, gsub, byte, match = string.format, string.gsub, string.byte, string.match

local L = {}

-- save_report's options: the run options that change a report's metadata, the raw
-- `metadata` (sent as given, under the options' changes), and name/description/folder.
L.SAVE = {
  metadata = "table", name = "string", description = "string", folder = "string",
}
for _, k in ipairs({ "filters", "logic", "replace_filters", "date_filter", "sort", "top", "columns",
  "groupings", "aggregates", "replace_aggregates" }) do
  L.SAVE[k] = options.RUN[k]
end
L.CLONE = { name = "string", folder = "string" }
L.FIELDS = { intersect_with = "table" }
L.OPERATORS = { dashboards = "boolean" }

local function check_id(id, what)
  local ok, why = ids.check(id, what or "report id")
  if not ok then return nil, errors.invalid(why) end
  return id
end

-- A deep copy with the API's list keys marked as arrays (lua-cjson cannot tell {} from []).
local function copy_marked(t)
  local function deep(v)
    if type(v) ~= "table" or v == json.null then return v end
    local c = {}
    for k, x in pairs(v) do c[k] = deep(x) end
    local mt = getmetatable(v)
    if mt then setmetatable(c, mt) end
    return c
  end
  return json.mark_arrays(deep(t))
end

-- The id of the report an answer describes, or nil and a `decode` error.
local function answer_id(decoded, what)
  local md = type(decoded) == "table" and decoded.reportMetadata
  local id = type(md) == "table" and md.id
  if type(id) ~= "string" or not ids.check(id) then
    return nil, errors.new("decode", what .. ": the answer holds no reportMetadata with a valid report id")
  end
  return id
end

-- POST /reports { reportMetadata = md }. Returns the new report's describe (its id is
-- d.reportMetadata.id), or nil, err.
function L.create(client, metadata)
  if type(metadata) ~= "table" then
    error("sfreports: create_report expects a reportMetadata table, got " .. type(metadata), 3)
  end
  local md = type(metadata.reportMetadata) == "table" and metadata.reportMetadata or metadata
  if next(md) == nil then error("sfreports: create_report needs report metadata (name, reportType, ...)", 3) end
  local decoded, err = client:send{ method = "POST", path = client:path("reports"),
    body = { reportMetadata = copy_marked(md) } }
  if decoded == nil then return nil, err end
  local _, ierr = answer_id(decoded, "create_report")
  if ierr then return nil, ierr end
  return decoded
end

-- POST /reports?cloneId=ID { reportMetadata = { name, folderId? } }. Returns the clone's
-- describe, or nil, err.
function L.clone(client, report_id, opts)
  opts = options.check(opts, L.CLONE, "clone_report", 3)
  if type(opts.name) ~= "string" or opts.name == "" then
    error("sfreports: clone_report needs option 'name' (the new report's name)", 3)
  end
  local id, err = check_id(report_id)
  if not id then return nil, err end
  local fid
  if opts.folder ~= nil then
    fid, err = check_id(opts.folder, "folder id")
    if not fid then return nil, err end
  end
  local decoded, rerr = client:send{ method = "POST", path = client:path("reports?cloneId=%s", id),
    body = { reportMetadata = { name = opts.name, folderId = fid } } }
  if decoded == nil then
    rerr.report_id = rerr.report_id or id
    return nil, rerr
  end
  local _, ierr = answer_id(decoded, "clone_report")
  if ierr then return nil, ierr end
  return decoded
end

-- The reportMetadata a save sends: the raw metadata, then the changes the run options
-- make to the saved report (checked against its describe), then name/description/folder.
-- Returns it, or nil and an error.
local function save_metadata(client, id, changes)
  local RO = require "sfreports.run_options"
  local md = {}
  for k, v in pairs(changes.metadata or {}) do md[k] = v end
  if RO.needs_describe(changes) then
    local describe, derr = client:describe(id)
    if not describe then return nil, derr end
    local prep = {}
    for _, k in ipairs(RO.OPTIONS) do prep[k] = changes[k] end
    local out, perr = RO.prepare(prep, describe)
    if not out then
      perr.report_id = perr.report_id or id
      return nil, perr
    end
    for k, v in pairs(out) do md[k] = v end
  end
  if changes.name ~= nil then md.name = changes.name end
  if changes.description ~= nil then md.description = changes.description end
  if changes.folder ~= nil then
    local fid, ferr = check_id(changes.folder, "folder id")
    if not fid then return nil, ferr end
    md.folderId = fid
  end
  return md
end

-- PATCH /reports/ID { reportMetadata = ... }. Returns the saved report's describe, or nil,
-- err. The cached describe of the report is dropped (on success and on an api error).
function L.save(client, report_id, changes)
  changes = options.check(changes, L.SAVE, "save_report", 3)
  if next(changes) == nil then
    error("sfreports: save_report needs changes (run options such as filters or aggregates, name, or metadata)", 3)
  end
  local id, err = check_id(report_id)
  if not id then return nil, err end
  local md, merr = save_metadata(client, id, changes)
  if not md then return nil, merr end
  local decoded, rerr = client:send{ method = "PATCH", path = client:path("reports/%s", id),
    body = { reportMetadata = copy_marked(md) } }
  client:forget_describe(id)
  if decoded == nil then
    rerr.report_id = rerr.report_id or id
    return nil, rerr
  end
  local _, ierr = answer_id(decoded, "save_report")
  if ierr then return nil, ierr end
  return decoded
end

-- DELETE /reports/ID. Returns true, or nil, err (404 when the report is gone).
function L.delete(client, report_id)
  local id, err = check_id(report_id)
  if not id then return nil, err end
  local ok, rerr = client:send{ method = "DELETE", path = client:path("reports/%s", id) }
  client:forget_describe(id)
  if ok == nil then
    rerr.report_id = rerr.report_id or id
    return nil, rerr
  end
  return true
end

-- POST /reports/ID/fields, with { intersectWith = [...] } when opts.intersect_with lists
-- report ids (the fields those reports share). Returns the decoded answer, or nil, err.
function L.fields(client, report_id, opts)
  opts = options.check(opts, L.FIELDS, "report_fields", 3)
  local id, err = check_id(report_id)
  if not id then return nil, err end
  local body
  if opts.intersect_with ~= nil then
    local list = json.array()
    for i, other in ipairs(opts.intersect_with) do
      local oid, oerr = check_id(other, "report id in intersect_with")
      if not oid then return nil, oerr end
      list[i] = oid
    end
    for k in pairs(opts.intersect_with) do
      if type(k) ~= "number" or list[k] == nil then
        error("sfreports: option 'intersect_with' for report_fields must be a list of report ids", 3)
      end
    end
    body = { intersectWith = list }
  end
  local decoded, rerr = client:send{ method = "POST", path = client:path("reports/%s/fields", id), body = body }
  if decoded == nil then
    rerr.report_id = rerr.report_id or id
    return nil, rerr
  end
  if type(decoded) ~= "table" then
    return nil, errors.new("decode", "the fields answer of report " .. id .. " is not a JSON object",
      { report_id = id })
  end
  return decoded
end

-- A path segment: letters, digits and _ . - $ ~ as they are, the rest %XX.
local function segment(s)
  return (gsub(s, "[^%w_%.%-%$~]", function(c) return format("%%%02X", byte(c)) end))
end

-- GET /reportTypes/TYPE: the describe of one report type. Returns it, or nil, err.
function L.report_type(client, report_type)
  if type(report_type) ~= "string" or report_type == "" or match(report_type, "%c") then
    error("sfreports: report_type expects a report type name such as \"Opportunity\", got "
      .. (type(report_type) == "string" and format("%q", report_type) or type(report_type)), 3)
  end
  return client:send{ method = "GET", path = client:path("reportTypes/%s", segment(report_type)) }
end

-- GET /filteroperators[?forDashboards=true]: the operators per data type. Returns the
-- decoded map ({ string = { {name=, label=}, ... }, ... }), or nil, err.
function L.filter_operators(client, opts)
  opts = options.check(opts, L.OPERATORS, "filter_operators", 3)
  local path = client:path("filteroperators") .. (opts.dashboards and "?forDashboards=true" or "")
  local decoded, err = client:send{ method = "GET", path = path }
  if decoded == nil then return nil, err end
  if type(decoded) ~= "table" then
    return nil, errors.new("decode", "the filter operators answer is not a JSON object")
  end
  return decoded
end

return L
