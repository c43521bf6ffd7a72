-- sfreports.describe: the column model of a report's describe answer, shared by the run
-- options (sfreports.run_options) and paging: a shape check of what the server sent, an
-- index of the report type's columns (API name -> name, label, dataType, filterable,
-- filterValues), resolution of a column named by API name or label with suggestions for
-- typos, and the filter operators each data type allows.
--
--   local D = require "sfreports.describe"
--   assert(D.check(describe))                         -- nil, err (kind "decode") on a bad shape
--   local c, why, fields = D.resolve(D.index(describe), "Amount", "filters")
--   D.allowed_operators(describe, c.dataType)         --> { "equals", "notEqual", ... } | nil
local args = require "sfreports.filters.args"
local json = require "sfreports.json"

local type, pairs, ipairs = type, pairs, ipairs
local setmetatable = setmetatable
local sort = table.sort
local floor, huge, min = math.floor, math.huge, math.min
local format, sub, lower, find, gsub, byte = string.format, string.sub, string.lower, string.find, string.gsub,
  string.byte

local misuse, quote, or_list, decode, invalid = args.misuse, args.quote, args.or_list, args.decode, args.invalid
local NULL = json.null
args.own_file()

local D = {}

local function table_or_nil(v)
  if type(v) == "table" then return v end
  return nil
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  sort(keys)
  return keys
end
D.sorted_keys = sorted_keys

-- ---------------------------------------------------------------------------------------
-- Shape check: every field the run options and paging read has the type they expect
-- (absent and JSON null are allowed everywhere but at the top).
-- ---------------------------------------------------------------------------------------

local function type_name(v)
  if v == NULL then return "null" end
  local t = type(v)
  if t == "table" then return v[1] ~= nil and "a list" or "an object" end
  if t == "string" or t == "number" or t == "boolean" then return "a " .. t end
  return "a " .. t .. " value"
end

-- A server's map key as shown in a path: control characters replaced, length bounded.
local function key_text(k)
  if type(k) ~= "string" then return "[" .. type(k) .. "]" end
  local s = gsub(k, "%c", "?")
  if #s > 40 then s = sub(s, 1, 40) .. "..." end
  return s
end

local function is_list(v)
  if type(v) ~= "table" then return false end
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k ~= floor(k) then return false end
  end
  return true
end

local function is_object(v)
  return type(v) == "table" and v[1] == nil
end

local WANT = {
  object = { test = is_object, text = "an object" },
  list = { test = is_list, text = "a list" },
  string = { test = function(v) return type(v) == "string" end, text = "a string" },
  boolean = { test = function(v) return type(v) == "boolean" end, text = "a boolean" },
}

-- Shapes: { type, fields = { name = shape }, items = shape (list items), values = shape
-- (map values) }. A field that is absent or null is not checked.
local STRING, BOOLEAN = { "string" }, { "boolean" }
local COLUMN = { "object", fields = {
  label = STRING, dataType = STRING, filterable = BOOLEAN, isLookup = BOOLEAN,
  filterValues = { "list", items = { "object", fields = { name = STRING } } },
} }
local COLUMN_MAP = { "object", values = COLUMN }
local NAMED_LIST = { "list", items = { "object", fields = { name = STRING } } }
local VALUE_LIST = { "list", items = { "object", fields = { value = STRING } } }

local SHAPE = { "object", fields = {
  reportMetadata = { "object", required = true, fields = {
    reportFilters = { "list", items = { "object", fields = { column = STRING, operator = STRING } } },
    reportBooleanFilter = STRING,
    standardDateFilter = { "object", fields = { column = STRING, durationValue = STRING } },
    sortBy = { "list", items = { "object" } },
    historicalSnapshotDates = { "list" },
    reportFormat = STRING,
    detailColumns = { "list", items = STRING },
  } },
  reportTypeMetadata = { "object", fields = {
    categories = { "list", items = { "object", fields = { columns = COLUMN_MAP } } },
    dataTypeFilterOperatorMap = { "object", values = NAMED_LIST },
    standardDateFilterDurationGroups = { "list", items = { "object", fields = {
      standardDateFilterDurations = VALUE_LIST } } },
    dateGranularityInfos = VALUE_LIST,
    isHistorical = BOOLEAN,
  } },
  reportExtendedMetadata = { "object", fields = {
    detailColumnInfo = COLUMN_MAP, groupingColumnInfo = COLUMN_MAP,
  } },
} }

-- The first place where v does not have `shape`, as a sentence; nil when it does.
local function mismatch(v, shape, path)
  local want = WANT[shape[1]]
  if not want.test(v) then
    return format("%s is %s, expected %s", path, type_name(v), want.text)
  end
  for name, field_shape in pairs(shape.fields or {}) do
    local fv = v[name]
    if fv == nil or fv == NULL then
      if field_shape.required then return format("%s has no %s", path, name) end
    else
      local why = mismatch(fv, field_shape, path .. "." .. name)
      if why then return why end
    end
  end
  if shape.items then
    for i, item in ipairs(v) do
      local why = mismatch(item, shape.items, format("%s[%d]", path, i))
      if why then return why end
    end
  end
  if shape.values then
    for _, k in ipairs(sorted_keys(v)) do
      local why = mismatch(v[k], shape.values, path .. "." .. key_text(k))
      if why then return why end
    end
  end
  return nil
end

local checked = setmetatable({}, { __mode = "k" })

-- True when a describe answer has the shape this module and its users read, else nil and
-- a `decode` error naming the first field that is wrong. Programmer misuse (no describe
-- at all) is the caller's to raise.
function D.check(describe)
  if type(describe) == "table" and checked[describe] then return true end
  local why
  if not is_object(describe) then
    why = "the report's describe answer is " .. type_name(describe) .. ", expected an object"
  else
    why = mismatch(describe, SHAPE, "describe")
    if why then why = "the report's describe answer is not usable: " .. why end
  end
  if why then return nil, decode(why) end
  checked[describe] = true
  return true
end

-- ---------------------------------------------------------------------------------------
-- Column index
-- ---------------------------------------------------------------------------------------

-- Merges one column's info into the index (the first source to give a field wins, except
-- that any source can mark the column not filterable).
local function add_column(idx, name, info)
  if type(name) ~= "string" or type(info) ~= "table" then return end
  local c = idx.cols[name]
  if not c then
    c = { name = name }
    idx.cols[name] = c
    idx.order[#idx.order + 1] = name
  end
  if c.label == nil and type(info.label) == "string" then c.label = info.label end
  if c.dataType == nil and type(info.dataType) == "string" then c.dataType = lower(info.dataType) end
  if info.filterable == false then
    c.filterable = false
  elseif info.filterable == true and c.filterable == nil then
    c.filterable = true
  end
  if c.filterValues == nil and type(info.filterValues) == "table" and #info.filterValues > 0 then
    c.filterValues = info.filterValues
  end
end

local function push(map, key, name)
  local list = map[key]
  if not list then list = {}; map[key] = list end
  for _, existing in ipairs(list) do
    if existing == name then return end
  end
  list[#list + 1] = name
end

local index_cache = setmetatable({}, { __mode = "k" })

-- Columns of the report type (API name -> { name, label, dataType, filterable, filterValues }),
-- from reportTypeMetadata.categories[].columns, then reportExtendedMetadata.detailColumnInfo and
-- groupingColumnInfo; with lookups by label and by lower-cased name or label. Cached per
-- describe table (the client caches describe per report).
function D.index(describe)
  local idx = index_cache[describe]
  if idx then return idx end
  idx = { cols = {}, order = {}, by_label = {}, by_lower = {} }
  local rtm = table_or_nil(describe.reportTypeMetadata) or {}
  local rem = table_or_nil(describe.reportExtendedMetadata) or {}
  for _, cat in ipairs(table_or_nil(rtm.categories) or {}) do
    local cols = type(cat) == "table" and table_or_nil(cat.columns)
    if cols then
      for _, name in ipairs(sorted_keys(cols)) do add_column(idx, name, cols[name]) end
    end
  end
  for _, key in ipairs({ "detailColumnInfo", "groupingColumnInfo" }) do
    local info = table_or_nil(rem[key])
    if info then
      for _, name in ipairs(sorted_keys(info)) do add_column(idx, name, info[name]) end
    end
  end
  for _, name in ipairs(idx.order) do
    local c = idx.cols[name]
    push(idx.by_lower, lower(name), name)
    if c.label then
      push(idx.by_label, c.label, name)
      push(idx.by_lower, lower(c.label), name)
    end
  end
  index_cache[describe] = idx
  return idx
end

-- ---------------------------------------------------------------------------------------
-- Suggestions
-- ---------------------------------------------------------------------------------------

-- Edit distance counting a transposition of neighbours as one edit (optimal string alignment).
local function distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev2, prev = nil, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = byte(a, i)
    for j = 1, lb do
      local cb = byte(b, j)
      local d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + ((ca == cb) and 0 or 1))
      if prev2 and j > 1 and ca == byte(b, j - 1) and byte(a, i - 1) == cb then
        d = min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
    end
    prev2, prev = prev, cur
  end
  return prev[lb]
end

-- Up to 3 of `candidates` ({ key=, names={...} }) close to `query`, best first: within a
-- few typos (about one per three characters, at most 3), then those containing the query.
function D.close_matches(query, candidates)
  local q = lower(query)
  local limit = min(3, floor(#q * 0.3))
  if limit < 1 then limit = 1 end
  local scored = {}
  for _, cand in ipairs(candidates) do
    local best = huge
    for _, name in ipairs(cand.names) do
      local ln = lower(name)
      local d = distance(q, ln)
      if d > limit then
        d = (#q >= 3 and find(ln, q, 1, true)) and limit + 0.5 or huge
      end
      if d < best then best = d end
    end
    if best < huge then scored[#scored + 1] = { key = cand.key, d = best } end
  end
  sort(scored, function(x, y)
    if x.d ~= y.d then return x.d < y.d end
    return x.key < y.key
  end)
  local out = {}
  for i = 1, min(3, #scored) do out[i] = scored[i].key end
  return out
end

-- A column as messages show it: 'AMOUNT' (Amount).
local function column_text(c)
  if c.label and c.label ~= c.name then return quote(c.name) .. " (" .. c.label .. ")" end
  return quote(c.name)
end
D.column_text = column_text

-- Up to 3 columns whose API name or label is close to `name`.
local function suggest_columns(idx, name)
  local candidates = {}
  for _, api in ipairs(idx.order) do
    candidates[#candidates + 1] = { key = api, names = { api, idx.cols[api].label } }
  end
  local out = {}
  for i, api in ipairs(D.close_matches(name, candidates)) do out[i] = idx.cols[api] end
  return out
end

-- ---------------------------------------------------------------------------------------
-- Resolution
-- ---------------------------------------------------------------------------------------

-- The column when `list` names one; else nil, a sentence and fields (ambiguous name).
local function pick(idx, list, how, name, option)
  if #list == 1 then return idx.cols[list[1]] end
  local shown = {}
  for i, api in ipairs(list) do shown[i] = column_text(idx.cols[api]) end
  return nil, format("column %s in %s is ambiguous: it is the %s of %s; use the API name",
    quote(name), option, how, or_list(shown)), { option = option, column = name, candidates = list }
end

-- The sentence and fields for a name that is no column, with the closest ones.
local function unknown_column(idx, name, option)
  local sugg = suggest_columns(idx, name)
  local names, shown = {}, {}
  for i, s in ipairs(sugg) do
    names[i] = s.name
    shown[i] = column_text(s)
  end
  local msg = format("unknown column %s in %s", quote(name), option)
  if #shown > 0 then
    msg = msg .. "; did you mean " .. or_list(shown) .. "?"
  else
    msg = msg .. " (not a column of this report type)"
  end
  return nil, msg, { option = option, column = name, suggestions = names }
end

-- Resolves a column named by API name or label (`option` names the option in messages).
-- Returns the column, or nil, a sentence and the error fields. When describe lists no
-- columns at all (e.g. metadata built by hand for a query), names are taken as API names,
-- with no type to check against.
function D.resolve(idx, name, option)
  local c = idx.cols[name]
  if c then return c end
  if #idx.order == 0 then return { name = name } end
  local by_label = idx.by_label[name]
  if by_label then return pick(idx, by_label, "label", name, option) end
  local by_lower = idx.by_lower[lower(name)]
  if by_lower then return pick(idx, by_lower, "name or label", name, option) end
  return unknown_column(idx, name, option)
end

-- Resolves `name` (API name or label) against a describe response: returns the API name and
-- the column info { name, label, dataType, filterable, filterValues }, or nil and an
-- `invalid` error. (Public as sfreports.filters.resolve_column.)
function D.resolve_column(describe, name)
  if not is_object(describe) then misuse("resolve_column", "describe must be a table") end
  if type(name) ~= "string" then misuse("resolve_column", "name must be a string") end
  local c, msg, fields = D.resolve(D.index(describe), name, "columns")
  if not c then return nil, invalid(msg, fields) end
  return c.name, c
end

-- ---------------------------------------------------------------------------------------
-- Operators
-- ---------------------------------------------------------------------------------------

-- Operators per data type when describe carries no dataTypeFilterOperatorMap entry
-- (GET /analytics/filteroperators, salesforce-analytics-api.md §7.1).
local COMPARE = { "equals", "notEqual", "lessThan", "greaterThan", "lessOrEqual", "greaterOrEqual" }
local TEXT = { "equals", "notEqual", "lessThan", "greaterThan", "lessOrEqual", "greaterOrEqual",
  "contains", "notContain", "startsWith" }
local BUILTIN_OPERATORS = {
  date = COMPARE, datetime = COMPARE, double = COMPARE, int = COMPARE, percent = COMPARE, currency = COMPARE,
  string = TEXT, picklist = TEXT, textarea = TEXT, url = TEXT, phone = TEXT, email = TEXT,
  reference = { "equals", "notEqual" }, boolean = { "equals", "notEqual" },
  id = { "equals", "notEqual", "startsWith" },
  multipicklist = { "equals", "notEqual", "includes", "excludes" },
}

-- The operator names a column of type dtype allows: the report type's own map, else the
-- API's documented list; nil when the type is unknown (nothing to check against).
function D.allowed_operators(describe, dtype)
  if not dtype then return nil end
  local rtm = table_or_nil(describe.reportTypeMetadata)
  local map = rtm and table_or_nil(rtm.dataTypeFilterOperatorMap)
  local list = map and table_or_nil(map[dtype])
  if list then
    local names, seen = {}, {}
    for _, op in ipairs(list) do
      if type(op) == "table" and type(op.name) == "string" and not seen[op.name] then
        seen[op.name] = true
        names[#names + 1] = op.name
      end
    end
    return names
  end
  return BUILTIN_OPERATORS[dtype]
end

return D
