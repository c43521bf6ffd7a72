-- sfreports.filters: the public entry for report filters: builders (the DSL), merging with
-- a report's saved filters, and the validation of run-time report changes against the
-- report's describe.
--
--   local F = require "sfreports.filters"
--   local expr = F.all{ F.eq("STAGE_NAME", {"Closed Won", "Closed Lost"}),
--                       F.any{ F.gt("AMOUNT", 1000), F.not_(F.eq("TYPE", "New Business")) } }
--   F.build(expr)        --> { reportFilters = {...}, reportBooleanFilter = "1 AND (2 OR NOT 3)" }
--   F.prepare(opts, describe) --> reportMetadata to POST | nil, err (kind "invalid" or "decode")
--
-- Values: every value given is ONE value; a value holding a comma is quoted so that
-- Salesforce does not split it (F.contains("ACCOUNT_NAME", "Acme, Inc.") sends
-- "\"Acme, Inc.\""). Several values are a Lua list: F.eq("STAGE_NAME", {"Won", "Lost"}).
-- F.raw("Closed Won,Closed Lost") sends the API's own comma syntax verbatim.
--
-- The parts, each its own module:
--   sfreports.filters.values   filter values: dates, raw(), formatting per column type
--   sfreports.filters.expr     builders, all/any/not_, flattening, build
--   sfreports.logic            filter logic: parse, check, render, combine
--   sfreports.describe         the column model of describe (shared with paging)
--   sfreports.run_options      prepare, needs_describe (date filter, sort/top/columns/groupings,
--                              aggregates and their builders: run_options.aggregates)
local args = require "sfreports.filters.args"
local values = require "sfreports.filters.values"
local expr = require "sfreports.filters.expr"
local logic = require "sfreports.logic"
local D = require "sfreports.describe"
local RO = require "sfreports.run_options"
local aggregates = require "sfreports.run_options.aggregates"
local json = require "sfreports.json"

local type, pairs, ipairs, setmetatable, rawset = type, pairs, ipairs, setmetatable, rawset
local format = string.format

local misuse, invalid, list_length = args.misuse, args.invalid, args.list_length
args.own_file()

local filters = {}

-- Values: F.date(v), F.datetime(v), F.raw("a,\"b,c\"").
filters.date = values.date
filters.datetime = values.datetime
filters.raw = values.raw

-- Builders: F.eq, F.ne, F.lt, F.gt, F.le, F.ge, F.contains, F.not_contains, F.starts_with,
-- F.includes, F.excludes (column, value); F.filter(column, api_operator, value);
-- F.all{...}, F.any{...}, F.not_(x); F.build(expr).
for fname in pairs(expr.CONSTRUCTORS) do filters[fname] = expr[fname] end
filters.filter = expr.filter
filters.all = expr.all
filters.any = expr.any
filters.not_ = expr.not_
filters.build = expr.build

-- Aggregate builders (run option `aggregates`, sfreports.run_options.aggregates):
-- F.sum, F.avg, F.min, F.max, F.unique (column by API name or label).
for fname in pairs(aggregates.BUILDERS) do filters[fname] = aggregates[fname] end

filters.normalize_logic = logic.normalize_logic
filters.resolve_column = D.resolve_column

filters.OPTIONS = RO.OPTIONS
filters.needs_describe = RO.needs_describe
filters.prepare = RO.prepare

-- F.MAX_FILTERS (20) and F.MAX_COLUMNS (100) are the limits prepare and merge check: they
-- are run_options' own fields, read and set through this table.
local LIMITS = { MAX_FILTERS = true, MAX_COLUMNS = true }
setmetatable(filters, {
  __index = function(_, k)
    if LIMITS[k] then return RO[k] end
  end,
  __newindex = function(t, k, v)
    if LIMITS[k] then RO[k] = v else rawset(t, k, v) end
  end,
})

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function list_of_filters(t, fname, what)
  if t == nil or t == json.null then return {} end
  if type(t) ~= "table" then misuse(fname, what .. " must be a list of filters") end
  local n = list_length(t, fname, what)
  local out = {}
  for i = 1, n do out[i] = t[i] end
  return out
end

-- new_filters_list entries as API filter tables: builder leaves formatted, tables copied
-- as they are (they are API filters already).
local function append_new(out, new)
  for _, f in ipairs(new) do
    if expr.is_expr(f) then
      if f.tag ~= "filter" then misuse("merge", "new_filters_list holds single filters only; use new_logic") end
      out[#out + 1] = expr.api_filter(f)
    elseif type(f) == "table" then
      out[#out + 1] = copy(f)
    else
      misuse("merge", "new_filters_list must hold filter tables")
    end
  end
end

-- Merges new filters (with optional logic over 1..#new) onto existing ones (with optional
-- logic over 1..#existing): existing filters keep their numbers, new ones follow, and the
-- two logics are ANDed, each wrapped: "(1 OR 2) AND (3 AND 4)". Used to AND a page filter
-- onto the caller's filters.
-- Returns reportFilters (a JSON array) and the logic to send (a string, or json.null when
-- everything is ANDed), or nil and an `invalid` error.
function filters.merge(metadata_filters, metadata_logic, new_filters_list, new_logic)
  local saved = list_of_filters(metadata_filters, "merge", "metadata_filters")
  local new = list_of_filters(new_filters_list, "merge", "new_filters_list")
  if not logic.is_blank(metadata_logic) and type(metadata_logic) ~= "string" then
    misuse("merge", "metadata_logic must be a string, nil or json.null")
  end
  if not logic.is_blank(new_logic) and type(new_logic) ~= "string" then
    misuse("merge", "new_logic must be a string, nil or json.null")
  end
  local out = json.array()
  for _, f in ipairs(saved) do out[#out + 1] = copy(f) end
  append_new(out, new)
  if #out > RO.MAX_FILTERS then
    return nil, invalid(format("%d filters (%d existing + %d new); Salesforce accepts at most %d per run",
      #out, #saved, #new, RO.MAX_FILTERS), { option = "filters" })
  end
  local saved_ast, saved_raw, saved_err = logic.saved_side(#saved, metadata_logic)
  if saved_err then return nil, invalid(saved_err, { option = "logic" }) end
  local new_ast, err = logic.new_side(#new, new_logic, "the filter logic")
  if err then return nil, invalid(err, { option = "logic" }) end
  return out, logic.combine(saved_ast, saved_raw, #saved, new_ast)
end

return filters
