-- fakeorg.engine: runs a report over the synthetic data set. plan() merges run-time
-- metadata over the saved report and validates it; execute() filters, sorts, limits,
-- groups and aggregates, and returns { head = <result without factMap>, entries = {...} }
-- for fakeorg.out to stream (entries carry records; cells are encoded while streaming).
local util = require "fakeorg.util"
local data = require "fakeorg.data"
local dates = require "fakeorg.dates"
local filters = require "fakeorg.filters"
local catalog = require "fakeorg.catalog"

local null, arr = util.null, util.arr
local lower, sort, floor = string.lower, table.sort, math.floor
local columns = data.columns

local engine = {}

engine.ROW_LIMIT = 2000
engine.REPORT_TYPE = { type = "Opportunity", label = "Opportunities" }

local function bad(message)
  return nil, { code = "BAD_REQUEST", message = message }
end

local function present(v) return v ~= nil and v ~= null end

local function unknown_column(name)
  return bad(("The column %s is not valid for this report type."):format(tostring(name)))
end

-- Aggregates -----------------------------------------------------------------------------

local AGG_LABEL = { s = "Sum of %s", a = "Average %s", m = "Min of %s", x = "Max of %s", u = "Unique %s" }

local function parse_aggregate(name)
  if name == "RowCount" then
    return { name = name, op = "count", label = "Record Count", dataType = "int" }
  end
  if type(name) ~= "string" then return bad("Aggregates must be strings.") end
  local op, cname = name:match("^([samxu])!(.+)$")
  local col = cname and columns[cname]
  if not op then return bad(("The aggregate %s is not valid."):format(name)) end
  if not col then return unknown_column(cname) end
  local ok = (op == "u" and col.kind ~= "textarea") or data.is_numeric(col)
    or (op == "m" or op == "x") and data.is_date(col)
  if not ok then return bad(("The aggregate %s is not valid for a %s column."):format(name, col.dataType)) end
  local dt = col.dataType
  if op == "u" then dt = "int" elseif op == "a" and dt == "int" then dt = "double" end
  return { name = name, op = op, col = col, label = AGG_LABEL[op]:format(col.label), dataType = dt }
end

local function new_acc() return { count = 0, sum = {}, n = {}, min = {}, max = {}, uniq = {}, rows = nil } end

local function accumulate(acc, aggs, rec)
  acc.count = acc.count + 1
  for i = 1, #aggs do
    local a = aggs[i]
    local col = a.col
    if col then
      local v = rec[col.name]
      if v ~= nil then
        if a.op == "u" then
          local key = type(v) == "table" and v.id or tostring(v)
          acc.uniq[i] = acc.uniq[i] or {}
          acc.uniq[i][key] = true
        else
          if a.op == "s" or a.op == "a" then
            acc.sum[i] = (acc.sum[i] or 0) + v
            acc.n[i] = (acc.n[i] or 0) + 1
          end
          if acc.min[i] == nil or v < acc.min[i] then acc.min[i] = v end
          if acc.max[i] == nil or v > acc.max[i] then acc.max[i] = v end
        end
      end
    end
  end
end

local function format_agg(dt, v)
  if v == nil then return null, "-" end
  if type(v) == "string" then return v, util.date_label(v) end
  if dt == "currency" then v = util.round2(v); return v, util.money(v) end
  if dt == "percent" then
    v = util.round2(v)
    return v, util.number_label(v, v == floor(v) and 0 or 2) .. "%"
  end
  if dt == "int" then return v, util.int_label(v) end
  v = util.round2(v)
  return v, util.number_label(v, 2)
end

local function agg_values(acc, aggs)
  local out = {}
  for i, a in ipairs(aggs) do
    local v
    if a.op == "count" then v = acc and acc.count or 0
    elseif not acc then v = (a.op == "s" or a.op == "a" or a.op == "u") and 0 or nil
    elseif a.op == "s" then v = acc.sum[i] or 0
    elseif a.op == "a" then v = acc.n[i] and acc.sum[i] / acc.n[i] or 0
    elseif a.op == "m" then v = acc.min[i]
    elseif a.op == "x" then v = acc.max[i]
    elseif a.op == "u" then
      v = 0
      for _ in pairs(acc.uniq[i] or {}) do v = v + 1 end
    end
    local value, label = format_agg(a.dataType, v)
    out[i] = { value = value, label = label }
  end
  return out
end

-- Groupings ------------------------------------------------------------------------------

local function parse_groupings(list, what, max)
  if not present(list) then return {} end
  if type(list) ~= "table" then return bad(what .. " must be an array.") end
  if #list > max then return bad(("A report can have at most %d %s levels."):format(max, what)) end
  local out = {}
  for i, g in ipairs(list) do
    if type(g) ~= "table" then return bad(what .. " entries must be objects.") end
    local col = columns[g.name]
    if not col then return unknown_column(g.name) end
    local gran = present(g.dateGranularity) and g.dateGranularity or "None"
    if data.is_date(col) then
      if not dates.valid_granularity(gran) then
        return bad(("The date granularity %s is not valid."):format(tostring(gran)))
      end
    else
      gran = "None"
    end
    local order = present(g.sortOrder) and g.sortOrder or "Asc"
    if lower(order) ~= "asc" and lower(order) ~= "desc" then
      return bad(("The sort order %s is not valid."):format(tostring(order)))
    end
    out[i] = { col = col, granularity = gran, desc = lower(order) == "desc",
      echo = { name = col.name, sortOrder = lower(order) == "desc" and "Desc" or "Asc",
        dateGranularity = gran, sortAggregate = null } }
  end
  return out
end

local function picklist_rank(col, v)
  for i, name in ipairs(col.values) do
    if name == v then return i end
  end
  return #col.values + 1
end

-- Sort key for grouping and sortBy: numbers, lower-case text, day numbers for dates.
local function sort_key(col, raw)
  if raw == nil then return nil end
  local kind = col.kind
  if kind == "name" then return lower(raw.name) end
  if kind == "boolean" then return raw and 1 or 0 end
  if data.is_date(col) then return util.parse_iso(raw) end
  if type(raw) == "string" then return lower(raw) end
  return raw
end

-- Group identity, sort key, value and label of a record at one grouping level.
local function group_of(level, rec)
  local col = level.col
  local raw = rec[col.name]
  if raw == nil then return "\0null", nil, null, "-" end
  if data.is_date(col) then
    local key, value, label = dates.bucket(level.granularity, util.parse_iso(raw))
    return value, key, value, label
  end
  local value, label = data.cell(col, raw)
  local key = sort_key(col, raw)
  if col.kind == "picklist" and col.values then key = picklist_rank(col, raw) end
  local id = col.kind == "name" and raw.id or tostring(raw)
  return id, key, value, label
end

-- nil sorts first (ascending), like an empty value.
local function less(a, b)
  if a == nil then return b ~= nil end
  if b == nil then return false end
  return a < b
end

-- Builds the grouping tree over rows (order preserved inside buckets).
local function build_tree(rows, levels, depth, prefix, nodes_out)
  local level = levels[depth]
  if not level then return {} end
  local buckets, order = {}, {}
  for _, rec in ipairs(rows) do
    local id, key, value, label = group_of(level, rec)
    local b = buckets[id]
    if not b then
      b = { sortkey = key, value = value, label = label, rows = {} }
      buckets[id] = b
      order[#order + 1] = b
    end
    b.rows[#b.rows + 1] = rec
  end
  sort(order, function(a, b)
    if level.desc then return less(b.sortkey, a.sortkey) end
    return less(a.sortkey, b.sortkey)
  end)
  for i, b in ipairs(order) do
    b.key = prefix and (prefix .. "_" .. (i - 1)) or tostring(i - 1)
    b.depth = depth
    nodes_out[#nodes_out + 1] = b
    b.children = build_tree(b.rows, levels, depth + 1, b.key, nodes_out)
  end
  return order
end

local function tree_json(nodes)
  local out = {}
  for i, n in ipairs(nodes) do
    out[i] = { key = n.key, label = n.label, value = n.value, groupings = arr(tree_json(n.children)) }
  end
  return out
end

-- Sorting --------------------------------------------------------------------------------

local function parse_sort(sort_by)
  if not present(sort_by) then return {} end
  if type(sort_by) ~= "table" then return bad("sortBy must be an array.") end
  local out = {}
  for i, s in ipairs(sort_by) do
    local col = type(s) == "table" and columns[s.sortColumn]
    if not col then return unknown_column(type(s) == "table" and s.sortColumn or s) end
    local order = present(s.sortOrder) and lower(s.sortOrder) or "asc"
    if order ~= "asc" and order ~= "desc" then
      return bad(("The sort order %s is not valid."):format(tostring(s.sortOrder)))
    end
    out[i] = { col = col, desc = order == "desc",
      echo = { sortColumn = col.name, sortOrder = order == "desc" and "Desc" or "Asc" } }
  end
  return out
end

local function sort_rows(rows, sorts)
  if #sorts == 0 then return end
  local keys = {}
  for _, rec in ipairs(rows) do
    local k = {}
    for j, s in ipairs(sorts) do k[j] = sort_key(s.col, rec[s.col.name]) end
    keys[rec] = k
  end
  sort(rows, function(a, b)
    local ka, kb = keys[a], keys[b]
    for j, s in ipairs(sorts) do
      local x, y = ka[j], kb[j]
      if x ~= y then
        if s.desc then return less(y, x) end
        return less(x, y)
      end
    end
    return a._pos < b._pos
  end)
end

-- Planning -------------------------------------------------------------------------------

local function pick(override, key, saved)
  if override and override[key] ~= nil then return override[key] end
  return saved
end

local DEFAULT_DATE_FILTER = { column = "CLOSE_DATE", durationValue = "CUSTOM", startDate = null, endDate = null }

-- base: catalog report (or a query pseudo-report); override: reportMetadata from the body.
function engine.plan(base, override)
  if override ~= nil and type(override) ~= "table" then
    return nil, { code = "JSON_PARSER_ERROR", message = "The request body is either invalid or incomplete." }
  end
  local plan = { base = base }
  local detail = pick(override, "detailColumns", base.detailColumns)
  if type(detail) ~= "table" then return bad("detailColumns must be an array.") end
  plan.detail = {}
  for i, name in ipairs(detail) do
    if not columns[name] then return unknown_column(name) end
    plan.detail[i] = columns[name]
  end
  local err
  plan.down, err = parse_groupings(pick(override, "groupingsDown", base.groupingsDown), "groupingsDown", 3)
  if not plan.down then return nil, err end
  plan.across, err = parse_groupings(pick(override, "groupingsAcross", base.groupingsAcross), "groupingsAcross", 2)
  if not plan.across then return nil, err end
  plan.format = base.query and "TABULAR" or base.format
  local run_format = override and override.reportFormat
  if not base.query and present(run_format) and run_format ~= base.format and base.format ~= "MULTI_BLOCK" then
    -- a run may change the format (e.g. a tabular report run as a summary to count rows)
    if run_format ~= "TABULAR" and run_format ~= "SUMMARY" and run_format ~= "MATRIX" then
      return bad(("The report format %s is not valid for a run."):format(tostring(run_format)))
    end
    plan.format = run_format
  end
  if base.query then
    if #plan.down > 0 then plan.format = #plan.across > 0 and "MATRIX" or "SUMMARY" end
  elseif plan.format == "TABULAR" and (#plan.down > 0 or #plan.across > 0) then
    return bad("Groupings are not supported on a tabular report.")
  elseif plan.format == "SUMMARY" and #plan.across > 0 then
    return bad("A summary report can't have column groupings.")
  end
  if plan.format == "MATRIX" and #plan.down > 2 then
    return bad("A matrix report can have at most 2 row groupings.")
  end
  local aggregates = pick(override, "aggregates", base.aggregates)
  if not present(aggregates) then aggregates = { "RowCount" } end
  plan.aggs = {}
  for i, name in ipairs(aggregates) do
    local a, aerr = parse_aggregate(name)
    if not a then return nil, aerr end
    plan.aggs[i] = a
  end
  local report_filters = pick(override, "reportFilters", base.reportFilters or {})
  plan.pred, plan.logic = filters.compile_all(report_filters,
    pick(override, "reportBooleanFilter", base.reportBooleanFilter or null), columns)
  if not plan.pred then return nil, plan.logic end
  plan.filters_echo = {}
  for i, f in ipairs(report_filters) do
    plan.filters_echo[i] = { column = f.column, operator = f.operator, value = f.value,
      filterType = present(f.filterType) and f.filterType or "fieldValue",
      isRunPageEditable = f.isRunPageEditable ~= false }
  end
  local date_pred, date_echo
  local saved_date = present(base.standardDateFilter) and base.standardDateFilter or DEFAULT_DATE_FILTER
  date_pred, err, date_echo = filters.compile_date(pick(override, "standardDateFilter", saved_date), columns)
  if err then return nil, err end
  plan.date_pred, plan.date_echo = date_pred, date_echo
  plan.sorts, err = parse_sort(pick(override, "sortBy", base.sortBy))
  if not plan.sorts then return nil, err end
  local top = pick(override, "topRows", base.topRows)
  if present(top) then
    if type(top) ~= "table" or type(top.rowLimit) ~= "number" or top.rowLimit < 1 then
      return bad("topRows.rowLimit must be a positive number.")
    end
    local dir = present(top.direction) and lower(top.direction) or "asc"
    if dir ~= "asc" and dir ~= "desc" then return bad("topRows.direction must be Asc or Desc.") end
    plan.top = { rowLimit = floor(top.rowLimit), direction = dir == "desc" and "Desc" or "Asc" }
  end
  plan.has_detail_rows = pick(override, "hasDetailRows", nil)
  return plan
end

-- Execution ------------------------------------------------------------------------------

local function select_rows(plan)
  local base = plan.base
  local all = data.current(base.seed, base.size)
  local pred, date_pred = plan.pred, plan.date_pred
  local out = {}
  for _, rec in ipairs(all) do
    if pred(rec) and (not date_pred or date_pred(rec)) then out[#out + 1] = rec end
  end
  sort_rows(out, plan.sorts)
  local top = plan.top
  if top and #out > top.rowLimit then
    local limited = {}
    if top.direction == "Desc" and #plan.sorts == 0 then
      for i = #out - top.rowLimit + 1, #out do limited[#limited + 1] = out[i] end
    else
      for i = 1, top.rowLimit do limited[i] = out[i] end
    end
    out = limited
  end
  return out
end

local function leaves_in_order(nodes, out)
  for _, n in ipairs(nodes) do
    if #n.children == 0 then out[#out + 1] = n else leaves_in_order(n.children, out) end
  end
  return out
end

-- chain of nodes (T first) a record belongs to, per axis.
local function chains(tree_nodes, levels, rows)
  local chain_of = {}
  for _, rec in ipairs(rows) do chain_of[rec] = { "T" } end
  for _, n in ipairs(tree_nodes) do
    for _, rec in ipairs(n.rows) do
      local c = chain_of[rec]
      c[n.depth + 1] = n.key
    end
  end
  return chain_of, #levels
end

local function extended_metadata(plan)
  local detail_info, agg_info, group_info = {}, {}, {}
  for _, col in ipairs(plan.detail) do
    detail_info[col.name] = { label = col.label, dataType = col.dataType, filterable = col.filterable,
      isLookup = col.isLookup, uniqueCountable = true, entityColumnName = "Opportunity." .. col.name,
      inactiveFilterValues = arr({}), filterValues = arr(engine.filter_values(col)) }
  end
  for _, a in ipairs(plan.aggs) do
    agg_info[a.name] = { label = a.label, dataType = a.dataType,
      acrossGroupingContext = null, downGroupingContext = null }
  end
  for i, g in ipairs(plan.down) do
    group_info[g.col.name] = { label = g.col.label, dataType = g.col.dataType, groupingLevel = i - 1 }
  end
  for i, g in ipairs(plan.across) do
    group_info[g.col.name] = { label = g.col.label, dataType = g.col.dataType, groupingLevel = i - 1 }
  end
  return { detailColumnInfo = detail_info, aggregateColumnInfo = agg_info, groupingColumnInfo = group_info }
end

function engine.filter_values(col)
  local out = {}
  if col.kind == "boolean" then
    return { { name = "True", label = "True" }, { name = "False", label = "False" } }
  end
  for i, v in ipairs(col.values or {}) do out[i] = { name = v, label = v } end
  return out
end

local function echo_list(levels)
  local out = {}
  for i, l in ipairs(levels) do out[i] = l.echo end
  return arr(out)
end

function engine.metadata(plan, details)
  local base = plan.base
  local detail, aggs = {}, {}
  for i, col in ipairs(plan.detail) do detail[i] = col.name end
  for i, a in ipairs(plan.aggs) do aggs[i] = a.name end
  return {
    id = base.query and null or base.id, name = base.name, developerName = base.developerName,
    reportFormat = plan.format, reportType = engine.REPORT_TYPE,
    detailColumns = arr(detail), aggregates = arr(aggs),
    groupingsDown = echo_list(plan.down), groupingsAcross = echo_list(plan.across),
    reportFilters = arr(plan.filters_echo), reportBooleanFilter = plan.logic,
    standardDateFilter = plan.date_echo, sortBy = echo_list(plan.sorts),
    topRows = plan.top or null, hasDetailRows = details, hasRecordCount = true,
    showGrandTotal = true, showSubtotals = true, currency = "USD", scope = "organization",
    folderId = base.folderId or "00DFk0000000001AAA", description = base.description or null, division = null,
    historicalSnapshotDates = arr({}), chart = null, crossFilters = arr({}), buckets = arr({}),
    dashboardSetting = null, presentationOptions = { hasStackedSummaries = false },
    standardFilters = null, supportsRoleHierarchy = false, userOrHierarchyFilterId = null,
  }
end

-- Runs the plan; details = include detail rows.
function engine.execute(plan, details)
  local rows = select_rows(plan)
  local down_nodes, across_nodes = {}, {}
  local down_tree = build_tree(rows, plan.down, 1, nil, down_nodes)
  local across_tree = build_tree(rows, plan.across, 1, nil, across_nodes)
  -- detail-row order: down leaves in order (rows keep their sortBy order inside)
  local ordered = rows
  if #plan.down > 0 then
    ordered = {}
    for _, leaf in ipairs(leaves_in_order(down_tree, {})) do
      for _, rec in ipairs(leaf.rows) do ordered[#ordered + 1] = rec end
    end
  end
  local included = {}
  for i = 1, math.min(#ordered, engine.ROW_LIMIT) do included[ordered[i]] = true end
  local down_chain, nd = chains(down_nodes, plan.down, rows)
  local across_chain, na = chains(across_nodes, plan.across, rows)
  local accs, aggs = {}, plan.aggs
  for _, rec in ipairs(ordered) do
    local dc, ac = down_chain[rec], across_chain[rec]
    for i = 1, #dc do
      for j = 1, #ac do
        local key = dc[i] .. "!" .. ac[j]
        local acc = accs[key]
        if not acc then acc = new_acc(); accs[key] = acc end
        accumulate(acc, aggs, rec)
        if details and i == nd + 1 and j == na + 1 and included[rec] then
          acc.rows = acc.rows or {}
          acc.rows[#acc.rows + 1] = rec
        end
      end
    end
  end
  local entries = {}
  local down_keys, across_keys = { { "T", nd == 0 } }, { { "T", na == 0 } }
  for _, n in ipairs(down_nodes) do down_keys[#down_keys + 1] = { n.key, n.depth == nd } end
  for _, n in ipairs(across_nodes) do across_keys[#across_keys + 1] = { n.key, n.depth == na } end
  for _, d in ipairs(down_keys) do
    for _, a in ipairs(across_keys) do
      local key = d[1] .. "!" .. a[1]
      local acc = accs[key]
      local entry = { key = key, aggregates = agg_values(acc, aggs) }
      if details then entry.rows = (d[2] and a[2] and acc and acc.rows) or {} end
      entries[#entries + 1] = entry
    end
  end
  local total = #rows
  local head = {
    allData = total <= engine.ROW_LIMIT,
    hasExceededTabularRowLimit = total > engine.ROW_LIMIT,
    hasDetailRows = details,
    groupingsDown = { groupings = arr(tree_json(down_tree)) },
    groupingsAcross = { groupings = arr(tree_json(across_tree)) },
    reportMetadata = engine.metadata(plan, details),
    reportExtendedMetadata = extended_metadata(plan),
    picklistColors = {},
  }
  return { head = head, entries = entries, columns = plan.detail, total = total }
end

-- Joined (MULTI_BLOCK) -------------------------------------------------------------------
-- Invented shape (no public recording exists): fact-map keys prefixed "B<n>#", per-block
-- metadata in reportMetadata.reportBlocks, aggregateColumnInfo keyed "B<n>#<aggregate>".
function engine.execute_joined(report, details)
  local all = data.dataset(report.seed, report.size)
  local level = parse_groupings({ { name = catalog.joined_grouping } }, "groupingsDown", 1)
  local nodes = {}
  local tree = build_tree(all, level, 1, nil, nodes)
  local entries, blocks, agg_info, detail_info = {}, {}, {}, {}
  for b, block in ipairs(catalog.joined_blocks) do
    local prefix = "B" .. (b - 1) .. "#"
    local pred = assert(filters.compile(block.filter, columns))
    local plan = assert(engine.plan({ detailColumns = block.detailColumns, aggregates = block.aggregates,
      groupingsDown = {}, groupingsAcross = {}, format = "TABULAR" }, nil))
    local function entry(key, rows, leaf)
      local acc = new_acc()
      local kept = {}
      for _, rec in ipairs(rows) do
        if pred(rec) then accumulate(acc, plan.aggs, rec); kept[#kept + 1] = rec end
      end
      local e = { key = prefix .. key, aggregates = agg_values(acc, plan.aggs), columns = plan.detail }
      if details then e.rows = leaf and kept or {} end
      entries[#entries + 1] = e
    end
    entry("T!T", all, false)
    for _, n in ipairs(nodes) do entry(n.key .. "!T", n.rows, true) end
    for _, a in ipairs(plan.aggs) do
      agg_info[prefix .. a.name] = { label = a.label, dataType = a.dataType,
        acrossGroupingContext = null, downGroupingContext = null }
    end
    for name, info in pairs(extended_metadata(plan).detailColumnInfo) do detail_info[name] = info end
    blocks[b] = { blockId = "B" .. (b - 1), name = block.name, reportType = engine.REPORT_TYPE,
      detailColumns = block.detailColumns, aggregates = block.aggregates,
      reportFilters = { { column = block.filter.column, operator = block.filter.operator,
        value = block.filter.value, filterType = "fieldValue", isRunPageEditable = true } },
      reportBooleanFilter = null }
  end
  local meta = {
    id = report.id, name = report.name, developerName = report.developerName,
    reportFormat = "MULTI_BLOCK", reportType = engine.REPORT_TYPE,
    detailColumns = arr({}), aggregates = arr({}), groupingsDown = { level[1].echo },
    groupingsAcross = arr({}), reportFilters = arr({}), reportBooleanFilter = null,
    hasDetailRows = details, reportBlocks = blocks, currency = "USD", scope = "organization",
    standardDateFilter = null, sortBy = arr({}), topRows = null, historicalSnapshotDates = arr({}),
  }
  local head = {
    allData = true, hasExceededTabularRowLimit = false, hasDetailRows = details,
    groupingsDown = { groupings = arr(tree_json(tree)) }, groupingsAcross = { groupings = arr({}) },
    reportMetadata = meta,
    reportExtendedMetadata = { detailColumnInfo = detail_info, aggregateColumnInfo = agg_info,
      groupingColumnInfo = { [catalog.joined_grouping] = { label = columns[catalog.joined_grouping].label,
        dataType = columns[catalog.joined_grouping].dataType, groupingLevel = 0 } } },
    picklistColors = {},
  }
  return { head = head, entries = entries, columns = {}, total = #all }
end

-- reportMetadata + reportExtendedMetadata of a saved report, without running it.
function engine.describe_parts(report)
  if report.format == "MULTI_BLOCK" then
    local doc = engine.execute_joined(report, false)
    return doc.head.reportMetadata, doc.head.reportExtendedMetadata
  end
  local plan = assert(engine.plan(report, nil))
  return engine.metadata(plan, true), extended_metadata(plan)
end

-- Convenience: validate + run a catalog report with an optional metadata override.
function engine.run(report, override, details)
  if report.format == "MULTI_BLOCK" then return engine.execute_joined(report, details) end
  local plan, err = engine.plan(report, override)
  if not plan then return nil, err end
  return engine.execute(plan, details)
end

return engine
