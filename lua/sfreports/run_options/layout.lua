-- sfreports.run_options.layout: the run options that shape the rows rather than select
-- them: sort (sortBy), top (topRows), columns (detailColumns) and groupings
-- (groupingsDown, and reportFormat when the groupings change it), columns resolved by API
-- name or label against describe.
local args = require "sfreports.filters.args"
local values = require "sfreports.filters.values"
local D = require "sfreports.describe"
local json = require "sfreports.json"

local type, pairs, ipairs = type, pairs, ipairs
local concat = table.concat
local floor = math.floor
local format, lower = string.format, string.lower

local misuse, quote, invalid = args.misuse, args.quote, args.invalid
local list_length, check_keys = args.list_length, args.check_keys
local DATE_TYPES = values.DATE_TYPES
local NULL = json.null
args.own_file()

local layout = {}

-- v when it is a table, else nil (what a server sent may be anything).
local function table_or_nil(v)
  if type(v) == "table" then return v end
  return nil
end
layout.table_or_nil = table_or_nil

-- A shallow copy of t.
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end
layout.copy = copy

local function copy_array(t)
  local out = json.array()
  for i, v in ipairs(table_or_nil(t) or {}) do
    out[i] = type(v) == "table" and copy(v) or v
  end
  return out
end
layout.copy_array = copy_array

-- ---------------------------------------------------------------------------------------
-- sort and top
-- ---------------------------------------------------------------------------------------

local function sort_order(v, fname)
  if type(v) == "string" then
    local l = lower(v)
    if l == "asc" or l == "ascending" then return "asc" end
    if l == "desc" or l == "descending" then return "desc" end
  end
  misuse(fname, "sort order must be \"asc\" or \"desc\", got " .. quote(v))
end

local function is_order_word(v)
  if type(v) ~= "string" then return false end
  local l = lower(v)
  return l == "asc" or l == "desc" or l == "ascending" or l == "descending"
end

-- True for {"COL", "desc"} (one column and its order, not a list of two columns).
local function is_column_and_order(x)
  return list_length(x, "prepare", "sort") == 2 and type(x[1]) == "string" and is_order_word(x[2])
end

-- sort: "COL" | {"COL", "desc"} | {column=, order=} | a list of those.
local function sort_specs(s)
  local specs = {}
  local function one(x)
    if type(x) == "string" then
      specs[#specs + 1] = { column = x, order = "asc" }
    elseif type(x) == "table" and x.column ~= nil then
      check_keys(x, { column = true, order = true }, "prepare", "a sort table")
      if type(x.column) ~= "string" then misuse("prepare", "sort column must be a string") end
      specs[#specs + 1] = { column = x.column, order = x.order == nil and "asc" or sort_order(x.order, "prepare") }
    elseif type(x) == "table" and is_column_and_order(x) then
      specs[#specs + 1] = { column = x[1], order = sort_order(x[2], "prepare") }
    else
      misuse("prepare", "sort must be \"COLUMN\", {\"COLUMN\", \"desc\"}, {column=, order=} or a list of those")
    end
  end
  if type(s) == "table" and s.column == nil and not is_column_and_order(s) then
    local n = list_length(s, "prepare", "sort")
    if n == 0 then misuse("prepare", "sort must name at least one column") end
    for i = 1, n do one(s[i]) end
  else
    one(s)
  end
  return specs
end

local function top_rows(top)
  local rows, direction = top, "Asc"
  if type(top) == "table" then
    check_keys(top, { rows = true, direction = true }, "prepare", "top")
    rows = top.rows
    if top.direction ~= nil then
      direction = sort_order(top.direction, "prepare") == "asc" and "Asc" or "Desc"
    end
  end
  if type(rows) ~= "number" or rows ~= floor(rows) or rows < 1 then
    misuse("prepare", "top must be a positive integer or {rows=N, direction=\"Asc\"|\"Desc\"}")
  end
  return { rowLimit = rows, direction = direction }
end

-- sortBy for the sort option, columns resolved. Returns it, or nil and an `invalid` error.
local function sort_by_columns(sort_option, idx)
  local by = json.array()
  for i, s in ipairs(sort_specs(sort_option)) do
    local c, msg, fields = D.resolve(idx, s.column, "sort")
    if not c then return nil, invalid(msg, fields) end
    by[i] = { sortColumn = c.name, sortOrder = s.order }
  end
  return by
end

-- The sortBy that top rows rely on when the run sets no sort: a copy of the saved sort.
-- Returns it, or nil and an `invalid` error when the report has none.
local function saved_sort_for_top(md)
  local saved_sort = table_or_nil(md.sortBy)
  if not saved_sort or #saved_sort == 0 then
    return nil, invalid("top rows need a sort: pass sort (the report has no saved sort)", { option = "top" })
  end
  return copy_array(saved_sort)
end

-- Sets out.sortBy and out.topRows from the sort and top options. Returns true, or nil and an
-- `invalid` error.
function layout.add_sort_and_top(out, opts, idx, md)
  local err
  if opts.sort ~= nil then
    out.sortBy, err = sort_by_columns(opts.sort, idx)
    if not out.sortBy then return nil, err end
  end
  if opts.top ~= nil then
    out.topRows = top_rows(opts.top)
    if not out.sortBy then
      out.sortBy, err = saved_sort_for_top(md)
      if not out.sortBy then return nil, err end
    end
  end
  return true
end

-- ---------------------------------------------------------------------------------------
-- columns and groupings
-- ---------------------------------------------------------------------------------------

local MAX_GROUPINGS = { SUMMARY = 3, MATRIX = 2, TABULAR = 3 }

-- The date granularities the report type offers (a set, "None" included), or nil when
-- describe lists none.
local function offered_granularities(describe)
  local rtm = table_or_nil(describe.reportTypeMetadata) or {}
  local granularities
  for _, g in ipairs(table_or_nil(rtm.dateGranularityInfos) or {}) do
    if type(g) == "table" and type(g.value) == "string" then
      granularities = granularities or { None = true }
      granularities[g.value] = true
    end
  end
  return granularities
end

-- One grouping option ("COL" or a table) as a groupingsDown entry, checked against
-- describe. Returns it, or nil, a sentence and fields.
local function grouping_entry(idx, granularities, g)
  if type(g) == "string" then g = { name = g } end
  if type(g) ~= "table" or type(g.name) ~= "string" then
    misuse("prepare", "each grouping must be a column name or {name=, sortOrder=, dateGranularity=}")
  end
  check_keys(g, { name = true, sortOrder = true, dateGranularity = true, sortAggregate = true },
    "prepare", "a grouping")
  local c, msg, fields = D.resolve(idx, g.name, "groupings")
  if not c then return nil, msg, fields end
  local gran = g.dateGranularity or "None"
  if type(gran) ~= "string" then misuse("prepare", "dateGranularity must be a string") end
  if granularities and not granularities[gran] then
    local offered = D.sorted_keys(granularities)
    return nil, format("date granularity %s is not offered by this report type; offered: %s", quote(gran),
      concat(offered, ", ")), { option = "groupings", column = c.name }
  end
  if gran ~= "None" and c.dataType and not DATE_TYPES[c.dataType] then
    return nil, format("date granularity %s needs a date column, but %s is a %s column", quote(gran),
      D.column_text(c), c.dataType), { option = "groupings", column = c.name }
  end
  local aggregate = g.sortAggregate
  if aggregate ~= nil and type(aggregate) ~= "string" then misuse("prepare", "sortAggregate must be a string") end
  return {
    name = c.name,
    sortOrder = (g.sortOrder == nil or sort_order(g.sortOrder, "prepare") == "asc") and "Asc" or "Desc",
    dateGranularity = gran,
    sortAggregate = aggregate or NULL,
  }
end

-- Sets out.groupingsDown (and out.reportFormat when the number of levels changes it).
-- Returns true, or nil, a sentence and fields.
local function prepare_groupings(describe, idx, md, groupings, out)
  if type(groupings) ~= "table" then misuse("prepare", "groupings must be a list") end
  local n = list_length(groupings, "prepare", "groupings")
  local granularities = offered_granularities(describe)
  local list = json.array()
  for i = 1, n do
    local entry, msg, fields = grouping_entry(idx, granularities, groupings[i])
    if not entry then return nil, msg, fields end
    list[i] = entry
  end
  local fmt = type(md.reportFormat) == "string" and md.reportFormat or nil
  local max = MAX_GROUPINGS[fmt] or 3
  if n > max then
    return nil, format("%d groupings given; a %s report has at most %d grouping levels", n,
      fmt == "MATRIX" and "MATRIX" or "SUMMARY", max), { option = "groupings" }
  end
  -- Salesforce refuses groupings on a tabular report ("Groupings are not supported on a tabular report").
  if fmt == "TABULAR" and n > 0 then out.reportFormat = "SUMMARY" end
  if fmt == "SUMMARY" and n == 0 then out.reportFormat = "TABULAR" end
  out.groupingsDown = list
  return true
end

local function prepare_columns(idx, columns, max_columns)
  if type(columns) ~= "table" then misuse("prepare", "columns must be a list of column names") end
  local n = list_length(columns, "prepare", "columns")
  if n == 0 then misuse("prepare", "columns must name at least one column") end
  local out, seen = json.array(), {}
  for i = 1, n do
    if type(columns[i]) ~= "string" then misuse("prepare", "columns must be a list of column names") end
    local c, msg, fields = D.resolve(idx, columns[i], "columns")
    if not c then return nil, msg, fields end
    if seen[c.name] then
      return nil, format("column %s is listed twice in columns", D.column_text(c)),
        { option = "columns", column = c.name }
    end
    seen[c.name] = true
    out[i] = c.name
  end
  if n > max_columns then
    return nil, format("%d columns given; Salesforce processes at most %d", n, max_columns),
      { option = "columns" }
  end
  return out
end

-- Sets out.detailColumns and out.groupingsDown (and reportFormat) from the columns and
-- groupings options (at most max_columns columns). Returns true, or nil and an `invalid`
-- error.
function layout.add_columns_and_groupings(out, opts, describe, idx, md, max_columns)
  if opts.columns ~= nil then
    local cols, msg, fields = prepare_columns(idx, opts.columns, max_columns)
    if not cols then return nil, invalid(msg, fields) end
    out.detailColumns = cols
  end
  if opts.groupings ~= nil then
    local ok, msg, fields = prepare_groupings(describe, idx, md, opts.groupings, out)
    if not ok then return nil, invalid(msg, fields) end
  end
  return true
end

return layout
