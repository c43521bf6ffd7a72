-- sfreports.run_options: a run's options (filters, logic, replace_filters, date_filter,
-- sort, top, columns, groupings, aggregates, replace_aggregates) -> the reportMetadata to
-- POST, checked against the report's describe before anything is sent.
--
--   local RO = require "sfreports.run_options"
--   if RO.needs_describe(opts) then
--     local md, err = RO.prepare(opts, describe)   -- nil, err: kind "invalid" (the options)
--   end                                            -- or "decode" (the describe answer)
--
-- Public as sfreports.filters.prepare / needs_describe / OPTIONS. The date filter lives in
-- run_options.dates, sort/top/columns/groupings in run_options.layout, aggregates in
-- run_options.aggregates, the column model in sfreports.describe.
local args = require "sfreports.filters.args"
local values = require "sfreports.filters.values"
local expr = require "sfreports.filters.expr"
local logic = require "sfreports.logic"
local D = require "sfreports.describe"
local dates = require "sfreports.run_options.dates"
local layout = require "sfreports.run_options.layout"
local aggregates = require "sfreports.run_options.aggregates"
local json = require "sfreports.json"
local options = require "sfreports.options"

local type, ipairs = type, ipairs
local concat = table.concat
local format = string.format

local misuse, quote, invalid, list_length = args.misuse, args.quote, args.invalid, args.list_length
args.own_file()

local RO = {}

-- Run options handled by prepare() (the list is sfreports.options.PREPARED, where the client
-- looks before loading this module).
RO.OPTIONS = options.PREPARED

-- Salesforce accepts at most 20 field filters per run (salesforce-analytics-api.md §7.2, §8).
RO.MAX_FILTERS = 20
-- The API processes at most 100 columns per report (§8).
RO.MAX_COLUMNS = 100

local table_or_nil, copy = layout.table_or_nil, layout.copy

-- True when opts hold any option that prepare() turns into report metadata (the client then
-- fetches, and caches, the report's describe).
function RO.needs_describe(opts)
  if opts == nil then return false end
  if type(opts) ~= "table" then misuse("needs_describe", "opts must be a table") end
  return options.prepares(opts)
end

-- ---------------------------------------------------------------------------------------
-- filters: the saved ones replace_filters leaves, then the run's own
-- ---------------------------------------------------------------------------------------

-- The API names of the saved filter columns replace_filters = { "COLUMN", ... } drops (a
-- set), or nil, a sentence and fields.
local function columns_to_drop(idx, saved, columns)
  local drop = {}
  local n = list_length(columns, "prepare", "replace_filters")
  local function has_saved(api)
    for _, f in ipairs(saved) do
      if f.column == api then return true end
    end
    return false
  end
  for i = 1, n do
    local name = columns[i]
    if type(name) ~= "string" then misuse("prepare", "replace_filters must be true or a list of column names") end
    local api = name
    local found = has_saved(name)
    if not found then
      local c, msg, fields = D.resolve(idx, name, "replace_filters")
      if not c then return nil, msg, fields end
      api = c.name
      found = has_saved(api)
    end
    if not found then
      return nil, format("replace_filters names column %s, but the report has no saved filter on it", quote(name)),
        { option = "replace_filters", column = name }
    end
    drop[api] = true
  end
  return drop
end

-- replace_filters = { "COLUMN", ... }: drops the saved filters on those columns and
-- renumbers the saved logic. Returns the kept filters and their logic (string or nil), or
-- nil, nil, a sentence and fields.
local function drop_saved(idx, saved, saved_logic, columns)
  local drop, why, why_fields = columns_to_drop(idx, saved, columns)
  if not drop then return nil, nil, why, why_fields end
  local kept, renumber = {}, {}
  for i, f in ipairs(saved) do
    if not drop[f.column] then
      kept[#kept + 1] = f
      renumber[i] = #kept
    end
  end
  if logic.is_blank(saved_logic) or #kept == 0 then return kept, nil end
  local ast, msg = logic.check(saved_logic, #saved, "the report's saved filter logic")
  if not ast then
    return nil, nil, "cannot drop saved filters: " .. msg, { option = "replace_filters" }
  end
  local pruned = logic.without(ast, renumber)
  if not pruned then return kept, nil end
  return kept, logic.render(logic.normalize(pruned))
end

-- The saved filters and logic that replace_filters leaves: all of them (nil/false), none
-- (true), or those on other columns with the logic renumbered (a list of columns). Returns
-- the filters and the logic, or nil, nil and an `invalid` error.
local function saved_filters_after_replace(replace, idx, md)
  local saved = {}
  for i, f in ipairs(table_or_nil(md.reportFilters) or {}) do saved[i] = f end
  local saved_logic = md.reportBooleanFilter
  if replace == true then
    return {}, nil
  elseif type(replace) == "table" then
    local kept, kept_logic, msg, fields = drop_saved(idx, saved, saved_logic, replace)
    if not kept then return nil, nil, invalid(msg, fields) end
    return kept, kept_logic
  elseif replace ~= nil and replace ~= false then
    misuse("prepare", "replace_filters must be a boolean or a list of column names")
  end
  return saved, saved_logic
end

-- filters with logic: a plain list of single filters, numbered 1..n in order. Returns the
-- leaves and the AST of the logic (nil when there are no filters), or nil, nil and an
-- `invalid` error.
local function leaves_under_logic(list, text)
  if type(text) ~= "string" then misuse("prepare", "logic must be a string") end
  if expr.is_expr(list) or type(list) ~= "table" or list.operator ~= nil then
    misuse("prepare", "with logic, filters must be a plain list of filters")
  end
  local leaves = {}
  for i = 1, list_length(list, "prepare", "filters") do
    local e = expr.as_expr(list[i], "prepare")
    if e.tag ~= "filter" then
      misuse("prepare", "with logic, filters must be single filters, not all{}/any{}/not_()")
    end
    leaves[i] = e
  end
  if not logic.is_blank(text) then
    local ast, msg = logic.check(text, #leaves, "the filter logic")
    if not ast then return nil, nil, invalid(msg, { option = "logic" }) end
    return leaves, ast
  elseif #leaves > 0 then
    return leaves, logic.and_of(1, #leaves)
  end
  return leaves, nil
end

-- Validates one builder leaf against describe and formats it. Returns the API filter table,
-- or nil, a sentence and the error fields.
local function prepare_leaf(describe, idx, f)
  local c, msg, fields = D.resolve(idx, f.column, "filters")
  if not c then return nil, msg, fields end
  if c.filterable == false then
    return nil, format("column %s is not filterable", D.column_text(c)), { option = "filters", column = c.name }
  end
  local allowed = D.allowed_operators(describe, c.dataType)
  local ok = not allowed
  for _, op in ipairs(allowed or {}) do
    if op == f.operator then ok = true end
  end
  if not ok then
    return nil, format("operator %s is not allowed on column %s of type %s; allowed: %s", quote(f.operator),
      D.column_text(c), c.dataType, #allowed > 0 and concat(allowed, ", ") or "none"),
      { option = "filters", column = c.name, operator = f.operator, allowed = allowed }
  end
  local value, err, bad = values.format(f.value, c)
  if not value then
    return nil, format("value %s for column %s %s", quote(bad), D.column_text(c), err),
      { option = "filters", column = c.name }
  end
  return { column = c.name, operator = f.operator, value = value }
end

-- The run's own filters (opts.filters, with opts.logic when given), checked against describe.
-- Returns them as API filter tables with the AST of their logic over 1..n (nil when there
-- are none), or nil, nil and an `invalid` error.
local function new_filters_from_opts(opts, describe, idx)
  if opts.filters == nil then
    if opts.logic ~= nil then misuse("prepare", "logic was given without filters") end
    return {}, nil
  end
  local leaves, ast, err
  if opts.logic ~= nil then
    leaves, ast, err = leaves_under_logic(opts.filters, opts.logic)
    if not leaves then return nil, nil, err end
  else
    leaves, ast = expr.flatten(expr.to_expr(opts.filters, "prepare"), "prepare")
  end
  local api_filters = {}
  for i, f in ipairs(leaves) do
    local api, msg, fields = prepare_leaf(describe, idx, f)
    if not api then return nil, nil, invalid(msg, fields) end
    api_filters[i] = api
  end
  return api_filters, ast
end

-- Sets out.reportFilters (the saved filters left by replace_filters, then the run's own) and
-- out.reportBooleanFilter (a string, or json.null when all are ANDed). Returns true, or nil
-- and an `invalid` error.
local function add_report_filters(out, opts, describe, idx, md)
  local saved, saved_logic, err = saved_filters_after_replace(opts.replace_filters, idx, md)
  if not saved then return nil, err end
  local new_filters, new_ast
  new_filters, new_ast, err = new_filters_from_opts(opts, describe, idx)
  if not new_filters then return nil, err end

  local total = #saved + #new_filters
  if total > RO.MAX_FILTERS then
    return nil, invalid(format("%d filters (%d saved + %d new); Salesforce accepts at most %d per run",
      total, #saved, #new_filters, RO.MAX_FILTERS), { option = "filters" })
  end

  local saved_ast, saved_raw, saved_err = logic.saved_side(#saved, saved_logic)
  if saved_err then return nil, invalid(saved_err, { option = "filters" }) end
  local report_filters = json.array()
  for _, f in ipairs(saved) do report_filters[#report_filters + 1] = copy(f) end
  for _, f in ipairs(new_filters) do report_filters[#report_filters + 1] = f end
  out.reportFilters = report_filters
  out.reportBooleanFilter = logic.combine(saved_ast, saved_raw, #saved, new_ast)
  return true
end

-- ---------------------------------------------------------------------------------------
-- dates
-- ---------------------------------------------------------------------------------------

-- Non-trending reports refuse snapshot dates (jsforce#34): send [] unless the type is historical.
local function snapshot_dates(describe, md)
  local rtm = table_or_nil(describe.reportTypeMetadata) or {}
  if rtm.isHistorical == true then
    return layout.copy_array(md.historicalSnapshotDates)
  end
  return json.array()
end

-- Sets out.standardDateFilter: the date_filter option, else a copy of the saved one (none
-- when the report has none). Returns true, or nil and an `invalid` error.
local function add_standard_date_filter(out, date_filter, describe, idx, md)
  if date_filter ~= nil then
    local sdf, msg, fields = dates.standard_date_filter(describe, idx, md, date_filter)
    if not sdf then return nil, invalid(msg, fields) end
    out.standardDateFilter = sdf
  elseif type(md.standardDateFilter) == "table" then
    out.standardDateFilter = copy(md.standardDateFilter)
  end
  return true
end

-- ---------------------------------------------------------------------------------------
-- prepare
-- ---------------------------------------------------------------------------------------

-- Raises unless prepare() was given an opts table and a describe answer (its shape is the
-- server's: checked by describe.check, a `decode` error).
local function check_prepare_args(opts, describe)
  if type(opts) ~= "table" then misuse("prepare", "opts must be a table") end
  if describe == nil then
    misuse("prepare", "describe must be the report's decoded describe response (with reportMetadata)")
  end
end

-- Turns run options into the reportMetadata to POST, checked against the report's describe.
-- Columns may be named by API name or label everywhere. Options (other keys are ignored:
-- they belong to the client):
--   filters          an expression, or a list of them (ANDed); added to the saved filters
--   logic            logic string over a plain list of filters (1-based), e.g. "1 OR (2 AND 3)"
--   replace_filters  true: drop the saved filters; or a list of columns: drop the saved filters
--                    on those columns only, renumbering the saved logic
--   date_filter      "THIS_FISCAL_QUARTER", {column=?, duration=}, or {column=?, from=?, to=?}
--                    (CUSTOM); the column defaults to the saved standardDateFilter column
--   sort             "COL", {"COL", "desc"}, {column=, order=}, or a list of those
--   top              N or {rows=N, direction="Asc"|"Desc"}; needs sort or a saved sort
--   columns          list of detail columns
--   groupings        list of "COL" or {name=, sortOrder=, dateGranularity=, sortAggregate=};
--                    on a TABULAR report this also sends reportFormat = "SUMMARY"
--   aggregates       list of "RowCount", "s!COL" (s, a, m, x, u) or builders (filters.sum(...));
--                    added to the saved aggregates (see run_options.aggregates)
--   replace_aggregates  true: drop the saved aggregates; or a list of aggregates or columns
--                    whose saved aggregates are dropped
-- The result always carries reportFilters (saved + new, a JSON array), reportBooleanFilter
-- (a string, or json.null when all are ANDed), historicalSnapshotDates ([] unless the report
-- type is historical) and the saved standardDateFilter (or its override); sortBy, topRows,
-- detailColumns, groupingsDown (and reportFormat), aggregates only when changed.
-- Returns the table, or nil and an error: `invalid` naming the option that is wrong, or
-- `decode` naming the field of the describe answer that has the wrong shape.
function RO.prepare(opts, describe)
  check_prepare_args(opts, describe)
  local shaped, derr = D.check(describe)
  if not shaped then return nil, derr end
  local md = describe.reportMetadata
  local idx = D.index(describe)
  local out = {}
  local ok, err = add_report_filters(out, opts, describe, idx, md)
  if not ok then return nil, err end
  out.historicalSnapshotDates = snapshot_dates(describe, md)
  ok, err = add_standard_date_filter(out, opts.date_filter, describe, idx, md)
  if not ok then return nil, err end
  ok, err = layout.add_sort_and_top(out, opts, idx, md)
  if not ok then return nil, err end
  ok, err = layout.add_columns_and_groupings(out, opts, describe, idx, md, RO.MAX_COLUMNS)
  if not ok then return nil, err end
  ok, err = aggregates.add(out, opts, describe, idx, md)
  if not ok then return nil, err end
  return out
end

return RO
