-- fakeorg.describe: GET /reports/{id}/describe, GET /reportTypes, /reportTypes/{type}
-- and /filteroperators bodies for the single "Opportunity" report type.
local util = require "fakeorg.util"
local data = require "fakeorg.data"
local dates = require "fakeorg.dates"
local filters = require "fakeorg.filters"
local engine = require "fakeorg.engine"

local arr, null = util.arr, util.null

local describe = {}

function describe.operator_map()
  local map = {}
  for data_type, ops in pairs(filters.OPERATORS) do
    local list = {}
    for i, name in ipairs(ops) do list[i] = { name = name, label = filters.OPERATOR_LABELS[name] } end
    map[data_type] = list
  end
  return map
end

local function categories()
  local by_label, order = {}, {}
  for _, col in ipairs(data.column_list) do
    local cat = by_label[col.category]
    if not cat then
      cat = { label = col.category, columns = {} }
      by_label[col.category] = cat
      order[#order + 1] = cat
    end
    cat.columns[col.name] = {
      label = col.label, dataType = col.dataType, filterable = col.filterable,
      filterValues = arr(engine.filter_values(col)), inactiveFilterValues = arr({}),
      isLookup = col.isLookup, isCustom = false, bucketable = col.kind ~= "textarea",
      allowedInCustomDetailFormula = true, fieldToFieldFilterable = false,
      uniqueCountable = col.kind ~= "textarea", entityColumnName = "Opportunity." .. col.name,
      maxLength = (col.kind == "string" or col.kind == "name") and 255 or null,
    }
  end
  return order
end

function describe.report_type_metadata()
  return {
    categories = categories(),
    dataTypeFilterOperatorMap = describe.operator_map(),
    dateGranularityInfos = dates.GRANULARITIES,
    standardDateFilterDurationGroups = dates.duration_groups(),
    divisionInfo = null,
    scopeInfo = { defaultValue = "organization", values = {
      { allowsDivision = false, label = "My opportunities", value = "user" },
      { allowsDivision = false, label = "All opportunities", value = "organization" } } },
    standardFilterInfos = {},
    supportsJoinedFormat = true, hasOuterJoin = false, isHistorical = false,
    isExternalObjectReport = false,
    objects = { { apiName = "Opportunity", joinType = "ROOT", label = "Opportunities" } },
  }
end

-- report: catalog entry; attributes: built by the caller (URLs carry the API version).
function describe.report(report, attributes)
  local meta, extended = engine.describe_parts(report)
  return {
    attributes = attributes,
    reportMetadata = meta,
    reportExtendedMetadata = extended,
    reportTypeMetadata = describe.report_type_metadata(),
  }
end

function describe.report_types(base)
  return { {
    label = "Opportunities",
    reportTypes = { { label = "Opportunities", type = "Opportunity", isHidden = false,
      supportsJoinedFormat = true, describeUrl = base .. "/reportTypes/Opportunity" } },
  } }
end

return describe
