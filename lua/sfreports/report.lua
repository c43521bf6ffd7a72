-- sfreports.report: the report model over a decoded report result.
--
-- A report result (Execute Sync, Instance Results, Query, or a dashboard component's
-- `reportResult`) is a fact map plus grouping trees plus metadata. This module turns any
-- of them into columns, rows and groups. It is pure Lua: it needs lua-cjson's null (via
-- sfreports.json) and sfreports.ids, never the C core or the client. The decoded table is
-- never modified; everything the API sends stays reachable through `raw` fields.
--
--   local report = require("sfreports.report").new(decoded)  -- sfreports.report(decoded)
--   for row in report:rows() do print(row.groups[1] and row.groups[1].label, row:label(1)) end
--
-- JSON null: a JSON `null` value is kept as `report.null` (module or object; == sfreports.null ==
-- require("sfreports.json").null == cjson.null, a light userdata), never as `nil`.
-- Compare with `v == report.null`. A cell whose `value` key is missing altogether reads
-- as null too. Report-level convenience fields (`id`, `name`, `status`) are `nil` when
-- the result has no string for them; fields copied verbatim (`instance.*`) keep null.
--
-- Report fields (read-only):
--   raw                 the decoded result, untouched (unknown keys pass through here)
--   format              "TABULAR" | "SUMMARY" | "MATRIX" | "MULTI_BLOCK" (reportMetadata
--                       .reportFormat; inferred from the grouping trees when absent)
--   all_data            false when the result is truncated: `allData == false` or
--                       `hasExceededTabularRowLimit == true`; true otherwise
--   truncated           not all_data
--   has_details         `hasDetailRows` (when absent: whether any fact-map entry has rows)
--   id, name            report id and name (reportMetadata, else attributes); nil if none
--   attributes          the `attributes` object, or nil (null in dashboard results)
--   instance            for Instance Results (`attributes.type == "ReportInstance"` or an
--                       `attributes.status`): { id, status, owner_id, completion_date,
--                       request_date, queryable, report_id }, values verbatim; else nil
--   status              instance status ("Success", "Running", ...) or nil
--   metadata            reportMetadata ({} when absent)
--   extended_metadata   reportExtendedMetadata ({} when absent)
--
-- Methods:
--   report:columns()           detail columns in `detailColumns` order:
--                              { name, label, data_type, index, info }; `info` is the raw
--                              detailColumnInfo entry (label falls back to the API name).
--   report:grouping_columns()  down levels then across levels, by level:
--                              { name, label, data_type, axis = "down"|"across", level,
--                                index, date_granularity, sort_order, info, grouping }
--                              (`grouping` is the reportMetadata.groupingsDown/Across entry).
--   report:aggregate_columns() { name, label, data_type, index, down_context,
--                                across_context, info } in reportMetadata.aggregates order.
--   report:rows()              iterator over detail rows, every format (see Rows below).
--   report:row_count()         number of detail rows rows() yields.
--   report:groups()            every fact-map entry (see Groups below), in tree order.
--   report:group(key)          the entry for one fact-map key ("T!T", "0_1!2"), or nil.
--   report:aggregate(key, agg) the aggregate object `agg` (name or 1-based index) of the
--                              entry `key`, or nil.
--   report:total(agg)          report:aggregate("T!T", agg) (grand total).
--   report:grid(agg [, block]) the full grid of one aggregate, including empty cells and
--                              subtotals: { down = items, across = items, values = {[i][j]},
--                              labels = {[i][j]} } where items are { key, level, groups }
--                              (down/across nodes in pre-order, then the "T" total with
--                              level 0) and a combination missing from the fact map gives
--                              value null and label "".
--   report:blocks()            MULTI_BLOCK only: { id, prefix, columns, keys, row_count }
--                              per block; {} for the other formats.
--
-- Rows. `for row in report:rows() do ... end` yields detail rows in grouping-tree order
-- (down tree depth first, then across tree depth first, over leaf groups), then fact-map
-- row order. Rows are read from leaf entries only (deepest down node x deepest across
-- node; `T!T` for a tabular report). If no leaf has rows but `T!T` does, those are used.
-- A row is a table:
--   row.data_cells   the raw `dataCells` array (what the writers read)
--   row.groups       array of groups the row sits in: down levels then across levels,
--                    aligned with grouping_columns(); one table shared by all rows of a
--                    fact-map entry (it identifies the entry), so treat it as read-only
--   row.key          the fact-map key the row came from ("0_1!2", "T!T", "B1#0!T")
--   row.index        1-based position in rows() order
--   row.raw          the raw row object ({ dataCells = ... } plus anything newer)
--   row.block        MULTI_BLOCK only: the block id; row.slots maps cells to columns()
--   row.cells        typed cells, built on first access (see Cells): cells[i].column is
--                    columns()[i] (columns()[row.slots[i]] in a MULTI_BLOCK block)
--   row:cell(i_or_name), row:value(i_or_name), row:label(i_or_name)
--   row:group(i_or_name)   a group by position or grouping column API name
--   row:record{ labels = bool }  flat table: grouping column name -> value, then detail
--                    column name -> value (labels instead of values with labels = true)
--
-- Cells: { value, label, column, raw [, currency] [, id] }
--   value     typed from the column's data type: numbers stay numbers (numeric strings in
--             int/double/percent/currency columns become numbers); currency cells give
--             the amount as `value` and the ISO code (or null) as `currency`; booleans
--             ("true"/"false" strings in boolean columns become booleans); date, datetime
--             and time stay the ISO strings Salesforce sends; JSON null is `report.null`.
--   label     the display text as sent (e.g. "-" for an empty cell, "16/01/2016").
--   id        set when the value is a record id shown under another label (name and
--             lookup columns: value "003580000025sonAAA", label "Edna"): an 18-character
--             id with a valid case checksum, or a 15-character id in id/reference columns.
--   raw       the raw dataCell (with `escapedLabel` and any newer keys).
-- Groups (row.groups, entry.down, entry.across) use the same typing:
--   { key, value, label, axis, level, column, raw [, currency] [, id] }
-- A level a row's path lacks (uneven or unresolvable trees) holds a placeholder
-- { key, value = null, label = null, axis, level, column, missing = true }.
--
-- Groups: report:groups() returns entries
--   { key, block, down_key, across_key, down = {groups}, across = {groups},
--     groups = down..across, aggregates, row_count, is_grand_total, is_leaf, raw }
-- in order: down nodes in pre-order then the "T" total; for each, across nodes in
-- pre-order then "T"; fact-map keys that match no tree node come last (sorted).
-- `aggregates` is an array in reportMetadata.aggregates order AND a map by name:
--   entry.aggregates[1], entry.aggregates["s!SALES"] ->
--   { name, value, label, column, raw [, currency] }  (column.label = "Sum of ...")
-- `row_count` is #rows when the entry has a `rows` key, else nil (summary-only results).
-- The group arrays may be shared between entries and rows: treat them as read-only.
--
-- MULTI_BLOCK (joined reports): no public recording of the JSON exists, so parsing is
-- defensive. Fact-map keys may carry a block prefix ("B0#0!T": everything up to the last
-- character that is not a letter, digit or "_" before the down path). Entries are grouped
-- by block (blocks sorted B0, B1, ..., B10; un-prefixed keys form a block only when they
-- hold rows); rows come per block, the deepest entries that hold rows, in key order
-- (pre-order paths). A block's cells map to columns through
-- row.slots: detail columns named with the block's prefix when there are such, else all
-- detailColumns when the widths match, else synthetic columns appended to columns().
-- Nothing here raises on odd shapes; `raw` is always kept.
--
-- Helpers: report.typed(value, data_type) -> typed value [, currency code];
-- report.parse_key(key) -> block prefix ("" if none), down path, across path (or nil);
-- report.is_report(v).
local json = require "sfreports.json"
local ids = require "sfreports.ids"

local null = json.null
local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local setmetatable, getmetatable, rawset, error = setmetatable, getmetatable, rawset, error
local find, match, gsub, format = string.find, string.match, string.gsub, string.format
local sort = table.sort

local M = {}
M.null = null

local EMPTY = setmetatable({}, { __newindex = function() error("sfreports.report: read-only table", 2) end })

local function tbl(v)
  if type(v) == "table" then return v end
  return nil
end

local function str(v)
  if type(v) == "string" then return v end
  return nil
end

---------------------------------------------------------------------------------------
-- typing

local NUMERIC = { int = true, double = true, percent = true, number = true, currency = true }

-- Returns the typed value, and for currency objects the currency code (string or null).
local function typed(v, data_type)
  if v == nil or v == null then return null end
  local tv = type(v)
  if tv == "table" then
    local amount = v.amount
    if amount ~= nil then
      if type(amount) == "string" then amount = tonumber(amount) or amount end
      local cur = v.currency
      if cur == nil then cur = null end
      return amount, cur
    end
    return v
  elseif tv == "string" then
    if NUMERIC[data_type] then
      if find(v, "^[-+]?%.?%d") then
        local n = tonumber(v)
        if n then return n end
      end
    elseif data_type == "boolean" then
      if v == "true" then return true elseif v == "false" then return false end
    end
  end
  return v
end
M.typed = typed

-- A record id shown under a different label (name / lookup columns).
local function record_id(v, label, data_type)
  if type(v) ~= "string" or v == label or type(label) ~= "string" then return nil end
  local n = #v
  if n == 18 then
    if ids.check(v) then return v end
  elseif n == 15 and (data_type == "reference" or data_type == "id") and not find(v, "[^%w]") then
    return v
  end
  return nil
end

-- A cell, group or aggregate object from its raw {value, label} table.
local function make_cell(raw, column)
  local dt = column and column.data_type
  local rv, label
  if type(raw) == "table" then rv, label = raw.value, raw.label end
  local value, currency = typed(rv, dt)
  if label == nil then label = null end
  local cell = { value = value, label = label, column = column, raw = raw }
  if currency ~= nil then cell.currency = currency end
  local rid = record_id(value, label, dt)
  if rid then cell.id = rid end
  return cell
end

---------------------------------------------------------------------------------------
-- keys and paths

-- "B0#0_1!2" -> prefix "B0#", down "0_1", across "2". Plain keys give prefix "".
local function parse_key(k)
  if type(k) ~= "string" then return nil end
  local left, across = match(k, "^(.*)!([^!]*)$")
  if not left then return nil end
  local prefix, down = match(left, "^(.*[^%w_])([%w_]*)$")
  if not prefix then prefix, down = "", left end
  return prefix, down, across
end
M.parse_key = parse_key

-- "0_1" -> {0, 1}; "T" -> {} ; anything else -> nil
local function parse_path(s)
  if s == "T" then return {} end
  if not find(s, "^%d+[_%d]*$") or find(s, "__") or find(s, "_$") then return nil end
  local out = {}
  for d in s:gmatch("%d+") do out[#out + 1] = tonumber(d) end
  return out
end

-- Pre-order comparison of index paths: parents before children, "T" ({}) last, and
-- unparsable paths (nil) after everything.
local function path_less(a, b)
  if a == nil then return false end
  if b == nil then return true end
  if #a == 0 then return false end
  if #b == 0 then return true end
  for i = 1, math.min(#a, #b) do
    if a[i] ~= b[i] then return a[i] < b[i] end
  end
  return #a < #b
end

local function is_prefix(a, b)
  if a == nil or b == nil or #a > #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

-- "B2" < "B10": compare by embedded numbers where they line up.
local function natural_less(a, b)
  local na, nb = tonumber(match(a, "(%d+)")), tonumber(match(b, "(%d+)"))
  local sa, sb = gsub(a, "%d+", ""), gsub(b, "%d+", "")
  if sa == sb and na and nb and na ~= nb then return na < nb end
  return a < b
end

---------------------------------------------------------------------------------------
-- columns

local function column_label(info, name, fallback)
  return (info and str(info.label)) or str(name) or fallback
end

-- Columns named by the list `names`, described by the map `infos`; a column without a
-- name is labelled "<fallback> <i>".
local function build_named_columns(names, infos, fallback)
  names, infos = tbl(names) or EMPTY, tbl(infos) or EMPTY
  local cols = {}
  for i = 1, #names do
    local name = names[i]
    local info = type(name) == "string" and tbl(infos[name]) or nil
    cols[i] = {
      name = str(name), label = column_label(info, name, fallback .. " " .. i),
      data_type = info and str(info.dataType) or nil, index = i, info = info,
    }
  end
  return cols
end

local function build_columns(meta, ext)
  return build_named_columns(meta.detailColumns, ext.detailColumnInfo, "Column")
end

local function build_aggregate_columns(meta, ext)
  local cols = build_named_columns(meta.aggregates, ext.aggregateColumnInfo, "Aggregate")
  for _, col in ipairs(cols) do
    col.down_context = col.info and col.info.downGroupingContext
    col.across_context = col.info and col.info.acrossGroupingContext
  end
  return cols
end

-- Depth of a grouping tree (0 when empty).
local function tree_depth(list, level)
  local depth = level - 1
  if type(list) ~= "table" then return depth end
  for i = 1, #list do
    local node = list[i]
    if type(node) == "table" then
      local d = tree_depth(tbl(node.groupings), level + 1)
      if d > depth then depth = d end
    end
  end
  return depth
end

local function top_groupings(tree)
  local t = tbl(tree)
  return t and tbl(t.groupings) or EMPTY
end

local function build_grouping_columns(meta, ext, raw)
  local infos = tbl(ext.groupingColumnInfo) or EMPTY
  local out, per_axis = {}, {}
  for _, axis in ipairs({ "down", "across" }) do
    local defs = tbl(meta[axis == "down" and "groupingsDown" or "groupingsAcross"]) or EMPTY
    local depth = tree_depth(top_groupings(raw[axis == "down" and "groupingsDown" or "groupingsAcross"]), 1)
    local levels = #defs
    if depth > levels then levels = depth end
    local list = {}
    for level = 1, levels do
      local def = tbl(defs[level])
      local name = def and str(def.name)
      local info = name and tbl(infos[name]) or nil
      local col = {
        name = name, axis = axis, level = level, index = #out + 1, info = info, grouping = def,
        label = column_label(info, name, format("Grouping (%s %d)", axis, level)),
        data_type = info and str(info.dataType) or nil,
        date_granularity = def and def.dateGranularity, sort_order = def and def.sortOrder,
      }
      out[#out + 1] = col
      list[level] = col
    end
    per_axis[axis] = list
  end
  return out, per_axis.down, per_axis.across
end

---------------------------------------------------------------------------------------
-- grouping trees

-- Walks one axis tree. Returns nodes in pre-order ({ key, level, path, leaf }, where
-- path[l] is the group at level l) and a key -> node index.
local function walk_axis(tree, axis, cols)
  local nodes, by_key = {}, {}
  local function visit(list, parent_path, parent_key, level)
    for i = 1, #list do
      local raw = list[i]
      if type(raw) == "table" then
        local key = str(raw.key) or (parent_key and (parent_key .. "_" .. (i - 1))) or tostring(i - 1)
        local col = cols[level]
        local dt = col and col.data_type
        local value, currency = typed(raw.value, dt)
        local label = raw.label
        if label == nil then label = null end
        local g = { key = key, value = value, label = label, axis = axis, level = level, column = col, raw = raw }
        if currency ~= nil then g.currency = currency end
        local rid = record_id(value, label, dt)
        if rid then g.id = rid end
        local path = {}
        for l = 1, level - 1 do path[l] = parent_path[l] end
        path[level] = g
        local children = tbl(raw.groupings)
        local node = { key = key, level = level, path = path, leaf = children == nil or #children == 0 }
        nodes[#nodes + 1] = node
        if by_key[key] == nil then by_key[key] = node end
        if children then visit(children, path, key, level + 1) end
      end
    end
  end
  visit(top_groupings(tree), EMPTY, nil, 1)
  return nodes, by_key
end

-- The group a row has at a level that its path lacks (uneven or unknown trees).
local function missing_group(col, key)
  return { key = key, value = null, label = null, axis = col.axis, level = col.level, column = col,
           missing = true }
end

-- Row groups aligned with grouping columns: down levels then across levels. Always a
-- new table: it also identifies the segment its rows come from (see rows()).
local function aligned_groups(self, dpath, apath)
  local gcols = self._gcols
  local out = {}
  local nd = #self._down_cols
  for i = 1, #gcols do
    local col = gcols[i]
    local g
    if i <= nd then g = dpath[i] else g = apath[i - nd] end
    out[i] = g or missing_group(col)
  end
  return out
end

local function concat2(a, b)
  if #a == 0 then return b end
  if #b == 0 then return a end
  local out = {}
  for i = 1, #a do out[i] = a[i] end
  for i = 1, #b do out[#a + i] = b[i] end
  return out
end

---------------------------------------------------------------------------------------
-- the report object

local Report = {}
Report.__index = Report
Report.null = null -- so that r.null works as well as require("sfreports.report").null
M.Report = Report

local Row = {}
local build_blocks -- defined with the MULTI_BLOCK helpers below

local SEGMENT_FIELDS = { key = true, block = true, slots = true }

-- Rows are small tables { data_cells, groups, index, raw }; `key`, `block` and `slots`
-- come from the segment (fact-map entry) the row's groups table belongs to, and `cells`
-- is built on first use.
local function row_metatable(report)
  local mt = { report = report }
  mt.__index = function(row, k)
    if SEGMENT_FIELDS[k] then
      local seg = report._seg_of[row.groups]
      return seg and seg[k]
    elseif k == "cells" then
      local cols = report._columns
      local dc = row.data_cells or EMPTY
      local slots = row.slots
      local cells = {}
      for i = 1, #dc do
        cells[i] = make_cell(dc[i], cols[slots and slots[i] or i])
      end
      rawset(row, "cells", cells)
      return cells
    end
    return Row[k]
  end
  return mt
end

local function infer_format(raw)
  if #top_groupings(raw.groupingsAcross) > 0 then return "MATRIX" end
  if #top_groupings(raw.groupingsDown) > 0 then return "SUMMARY" end
  return "TABULAR"
end

-- Builds a report object from a decoded report result. A dashboard component
-- ({ componentId, reportResult, ... }) is unwrapped to its reportResult.
function M.new(decoded)
  if type(decoded) ~= "table" then
    error("sfreports.report: expected a decoded report result (table), got " .. type(decoded), 2)
  end
  if decoded.factMap == nil and type(decoded.reportResult) == "table" then
    decoded = decoded.reportResult
  end
  local meta = tbl(decoded.reportMetadata) or EMPTY
  local ext = tbl(decoded.reportExtendedMetadata) or EMPTY
  local attrs = tbl(decoded.attributes)
  local self = setmetatable({
    raw = decoded,
    metadata = meta,
    extended_metadata = ext,
    attributes = attrs,
  }, Report)

  self.format = str(meta.reportFormat) or infer_format(decoded)
  self.all_data = decoded.allData ~= false and decoded.hasExceededTabularRowLimit ~= true
  self.truncated = not self.all_data
  self.id = str(meta.id) or (attrs and str(attrs.reportId)) or nil
  self.name = str(meta.name) or (attrs and str(attrs.reportName)) or nil
  if attrs and (attrs.type == "ReportInstance" or attrs.status ~= nil) then
    self.instance = {
      id = attrs.id, status = attrs.status, owner_id = attrs.ownerId,
      completion_date = attrs.completionDate, request_date = attrs.requestDate,
      queryable = attrs.queryable, report_id = attrs.reportId,
    }
    self.status = str(attrs.status)
  end

  local fm = tbl(decoded.factMap) or EMPTY
  self._fm = fm
  if type(decoded.hasDetailRows) == "boolean" then
    self.has_details = decoded.hasDetailRows
  else
    local any = false
    for _, e in pairs(fm) do
      if type(e) == "table" and type(e.rows) == "table" then any = true break end
    end
    self.has_details = any
  end

  self._columns = build_columns(meta, ext)
  self._aggs = build_aggregate_columns(meta, ext)
  self._gcols, self._down_cols, self._across_cols = build_grouping_columns(meta, ext, decoded)
  self._down_nodes, self._down_index = walk_axis(decoded.groupingsDown, "down", self._down_cols)
  self._across_nodes, self._across_index = walk_axis(decoded.groupingsAcross, "across", self._across_cols)
  self._row_mt = row_metatable(self)

  -- joined reports, or any result whose fact-map keys carry a block prefix
  local prefixed = false
  for k in pairs(fm) do
    if type(k) == "string" and not find(k, "^[%dT_]*![%dT_]*$") then
      local prefix = parse_key(k)
      if prefix and prefix ~= "" then prefixed = true break end
    end
  end
  self._multi = prefixed
  if prefixed then
    -- built now: a block may append synthetic columns, and columns() must not change later
    self._blocks = build_blocks(self)
  end
  return self
end

setmetatable(M, { __call = function(_, decoded) return M.new(decoded) end })

function M.is_report(v)
  return type(v) == "table" and getmetatable(v) == Report
end

function Report:columns() return self._columns end
function Report:grouping_columns() return self._gcols end
function Report:aggregate_columns() return self._aggs end

---------------------------------------------------------------------------------------
-- blocks (MULTI_BLOCK)

local function block_columns(self, block, width)
  local cols = self._columns
  local slots = {}
  if block.prefix ~= "" then
    for i = 1, #cols do
      local name = cols[i].name
      if name and name:sub(1, #block.prefix) == block.prefix then slots[#slots + 1] = i end
    end
    if #slots > 0 then return slots end
  end
  if width == nil or width == #cols then return nil end -- identity
  -- synthetic columns for this block, appended to columns()
  for i = 1, width do
    local idx = #cols + 1
    cols[idx] = { name = block.prefix .. "COLUMN" .. i, label = format("%s column %d", block.id, i),
                  index = idx, synthetic = true }
    slots[i] = idx
  end
  return slots
end

local function resolve_path(index, axis, prefix, s, path)
  local node = index[prefix .. s] or index[s]
  if node then return node.path, node end
  -- unresolved: groups carrying only keys, one per level
  local out = {}
  local key
  for l = 1, path and #path or 0 do
    key = key and (key .. "_" .. path[l]) or tostring(path[l])
    out[l] = { key = key, value = null, label = null, axis = axis, level = l, missing = true }
  end
  return out, nil
end

function build_blocks(self)
  local by_prefix, blocks = {}, {}
  for k, e in pairs(self._fm) do
    local prefix, down, across = parse_key(k)
    if prefix and type(e) == "table" then
      local b = by_prefix[prefix]
      if not b then
        b = { prefix = prefix, id = match(prefix, "^(.-)[^%w_]$") or prefix, entries = {}, keys = {} }
        by_prefix[prefix] = b
        blocks[#blocks + 1] = b
      end
      b.entries[#b.entries + 1] = { key = k, down = down, across = across, raw = e,
                                    dpath = parse_path(down), apath = parse_path(across) }
    end
  end
  sort(blocks, function(a, b) return natural_less(a.id, b.id) end)
  for _, b in ipairs(blocks) do
    sort(b.entries, function(x, y)
      if path_less(x.dpath, y.dpath) then return true end
      if path_less(y.dpath, x.dpath) then return false end
      if path_less(x.apath, y.apath) then return true end
      if path_less(y.apath, x.apath) then return false end
      return x.key < y.key
    end)
    local with_rows = {}
    for i, e in ipairs(b.entries) do
      b.keys[i] = e.key
      local rows = tbl(e.raw.rows)
      if rows and #rows > 0 then with_rows[#with_rows + 1] = e end
    end
    -- keep the deepest entries: drop one when another entry with rows lies below it
    local segs, width, count = {}, nil, 0
    for _, e in ipairs(with_rows) do
      local shadowed = false
      for _, o in ipairs(with_rows) do
        if o ~= e and is_prefix(e.dpath, o.dpath) and is_prefix(e.apath, o.apath) then
          shadowed = true
          break
        end
      end
      if not shadowed then
        local dpath = resolve_path(self._down_index, "down", b.prefix, e.down, e.dpath)
        local apath = resolve_path(self._across_index, "across", b.prefix, e.across, e.apath)
        local first = e.raw.rows[1]
        local dc = type(first) == "table" and tbl(first.dataCells)
        if dc and width == nil then width = #dc end
        segs[#segs + 1] = { rows = e.raw.rows, key = e.key, block = b.id,
                            groups = aligned_groups(self, dpath, apath) }
        count = count + #e.raw.rows
      end
    end
    b.row_count = count
    local slots = block_columns(self, b, width)
    for _, s in ipairs(segs) do s.slots = slots end
    b.segments = segs
    b.slots = slots
  end
  -- un-prefixed entries (a report-wide total?) form a block only when they hold rows;
  -- otherwise they are still listed by groups()
  local out = {}
  for _, b in ipairs(blocks) do
    if b.prefix ~= "" or b.row_count > 0 then out[#out + 1] = b end
  end
  return out
end

local function get_blocks(self)
  if not self._multi then return EMPTY end
  local blocks = self._blocks
  if not blocks then
    blocks = build_blocks(self)
    self._blocks = blocks
  end
  return blocks
end

function Report:blocks()
  local out = {}
  for i, b in ipairs(get_blocks(self)) do
    local cols = {}
    if b.slots then
      for j, s in ipairs(b.slots) do cols[j] = self._columns[s] end
    else
      cols = self._columns
    end
    out[i] = { id = b.id, prefix = b.prefix, columns = cols, keys = b.keys, row_count = b.row_count }
  end
  return out
end

---------------------------------------------------------------------------------------
-- rows

local function leaves(nodes)
  local out = {}
  for i = 1, #nodes do
    if nodes[i].leaf then out[#out + 1] = nodes[i] end
  end
  if #out == 0 then out[1] = { key = "T", path = EMPTY } end
  return out
end

-- The list of { rows, groups, key [, block, slots] } segments that rows() walks.
local function segments(self)
  local segs = self._segments
  if segs then return segs end
  segs = {}
  if self._multi then
    for _, b in ipairs(get_blocks(self)) do
      for _, s in ipairs(b.segments) do segs[#segs + 1] = s end
    end
  else
    local fm = self._fm
    local dl, al = leaves(self._down_nodes), leaves(self._across_nodes)
    for i = 1, #dl do
      local d = dl[i]
      for j = 1, #al do
        local a = al[j]
        local key = d.key .. "!" .. a.key
        local e = fm[key]
        local rows = type(e) == "table" and tbl(e.rows)
        if rows and #rows > 0 then
          segs[#segs + 1] = { rows = rows, key = key, groups = aligned_groups(self, d.path, a.path) }
        end
      end
    end
    if #segs == 0 then
      local e = tbl(fm["T!T"])
      local rows = e and tbl(e.rows)
      if rows and #rows > 0 then
        segs[1] = { rows = rows, key = "T!T", groups = aligned_groups(self, EMPTY, EMPTY) }
      end
    end
  end
  local seg_of = {}
  for _, seg in ipairs(segs) do seg_of[seg.groups] = seg end
  self._segments, self._seg_of = segs, seg_of
  return segs
end

-- Iterator over detail rows: for row in report:rows() do ... end
function Report:rows()
  local segs = segments(self)
  local mt = self._row_mt
  local si, ri, n = 1, 0, 0
  local seg = segs[1]
  local seg_rows = seg and seg.rows
  return function()
    while seg do
      ri = ri + 1
      local r = seg_rows[ri]
      if r ~= nil then
        n = n + 1
        local dc = type(r) == "table" and r.dataCells
        if type(dc) ~= "table" then dc = EMPTY end
        return setmetatable({ data_cells = dc, groups = seg.groups, index = n, raw = r }, mt)
      end
      si = si + 1
      seg = segs[si]
      seg_rows = seg and seg.rows
      ri = 0
    end
    return nil
  end
end

function Report:row_count()
  local n = 0
  for _, s in ipairs(segments(self)) do n = n + #s.rows end
  return n
end

-- row methods

local function find_cell_index(row, k)
  if type(k) == "number" then return k end
  local slots = row.slots
  local cols = getmetatable(row).report._columns
  local dc = row.data_cells
  for i = 1, #dc do
    local col = cols[slots and slots[i] or i]
    if col and col.name == k then return i end
  end
  return nil
end

function Row:cell(k)
  local i = find_cell_index(self, k)
  return i and self.cells[i] or nil
end

function Row:value(k)
  local c = self:cell(k)
  if c then return c.value end
  return nil
end

function Row:label(k)
  local c = self:cell(k)
  if c then return c.label end
  return nil
end

function Row:group(k)
  local groups = self.groups
  if type(k) == "number" then return groups[k] end
  for i = 1, #groups do
    local col = groups[i].column
    if col and col.name == k then return groups[i] end
  end
  return nil
end

function Row:record(opts)
  local labels = opts and opts.labels
  local out = {}
  local groups = self.groups
  for i = 1, #groups do
    local g = groups[i]
    local name = g.column and (g.column.name or g.column.label)
    if name then out[name] = labels and g.label or g.value end
  end
  local cells = self.cells
  for i = 1, #cells do
    local c = cells[i]
    local name = c.column and (c.column.name or c.column.label) or ("Column " .. i)
    out[name] = labels and c.label or c.value
  end
  return out
end

---------------------------------------------------------------------------------------
-- groups and aggregates

local function make_entry(self, key, raw, block, dkey, akey, dnode, anode, dpath, apath)
  local aggs = {}
  local raw_aggs = tbl(raw.aggregates)
  if raw_aggs then
    local cols = self._aggs
    for i = 1, #raw_aggs do
      local col = cols[i]
      local a = make_cell(raw_aggs[i], col)
      a.id = nil
      a.name = col and col.name
      aggs[i] = a
      if a.name and aggs[a.name] == nil then aggs[a.name] = a end
    end
  end
  local rows = tbl(raw.rows)
  local down, across = dpath or (dnode and dnode.path) or EMPTY, apath or (anode and anode.path) or EMPTY
  local dleaf = dnode and dnode.leaf or (dkey == "T" and #self._down_nodes == 0)
  local aleaf = anode and anode.leaf or (akey == "T" and #self._across_nodes == 0)
  return {
    key = key, block = block, down_key = dkey, across_key = akey,
    down = down, across = across, groups = concat2(down, across),
    aggregates = aggs, row_count = rows and #rows or nil,
    is_grand_total = dkey == "T" and akey == "T", is_leaf = (dleaf and aleaf) and true or false,
    raw = raw,
  }
end

local function build_groups(self)
  local fm = self._fm
  local list, by_key, seen = {}, {}, {}
  local function add(entry)
    list[#list + 1] = entry
    by_key[entry.key] = entry
    seen[entry.key] = true
  end
  if self._multi then
    for _, b in ipairs(get_blocks(self)) do
      for _, e in ipairs(b.entries) do
        local dpath, dnode = resolve_path(self._down_index, "down", b.prefix, e.down, e.dpath)
        local apath, anode = resolve_path(self._across_index, "across", b.prefix, e.across, e.apath)
        add(make_entry(self, e.key, e.raw, b.id, e.down, e.across, dnode, anode, dpath, apath))
      end
    end
  else
    local downs = {}
    for i, n in ipairs(self._down_nodes) do downs[i] = n end
    downs[#downs + 1] = { key = "T" }
    local acrosses = {}
    for i, n in ipairs(self._across_nodes) do acrosses[i] = n end
    acrosses[#acrosses + 1] = { key = "T" }
    for i = 1, #downs do
      local d = downs[i]
      for j = 1, #acrosses do
        local a = acrosses[j]
        local key = d.key .. "!" .. a.key
        local raw = fm[key]
        if type(raw) == "table" and not seen[key] then
          add(make_entry(self, key, raw, nil, d.key, a.key, d.path and d, a.path and a))
        end
      end
    end
  end
  -- keys no tree node explains, kept so that nothing is lost
  local rest = {}
  for k, raw in pairs(fm) do
    if not seen[k] and type(raw) == "table" then rest[#rest + 1] = k end
  end
  sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do
    local prefix, down, across = parse_key(k)
    local block = prefix and prefix ~= "" and (match(prefix, "^(.-)[^%w_]$") or prefix) or nil
    add(make_entry(self, k, fm[k], block, down, across, nil, nil, nil, nil))
  end
  self._groups, self._group_index = list, by_key
end

function Report:groups()
  if not self._groups then build_groups(self) end
  return self._groups
end

function Report:group(key)
  if not self._groups then build_groups(self) end
  return self._group_index[key]
end

function Report:aggregate(key, agg)
  local e = self:group(key)
  if not e then return nil end
  return e.aggregates[agg]
end

function Report:total(agg)
  if self._multi then
    -- the first block's grand total, unless a plain T!T exists
    local e = self:group("T!T")
    if e then return e.aggregates[agg] end
    local b = get_blocks(self)[1]
    return b and self:aggregate(b.prefix .. "T!T", agg) or nil
  end
  return self:aggregate("T!T", agg)
end

local function axis_items(nodes)
  local items = {}
  for i, n in ipairs(nodes) do items[i] = { key = n.key, level = n.level, groups = n.path } end
  items[#items + 1] = { key = "T", level = 0, groups = EMPTY }
  return items
end

function Report:grid(agg, block)
  if agg == nil then agg = 1 end
  local prefix = ""
  if block ~= nil then
    for _, b in ipairs(get_blocks(self)) do
      if b.id == block then prefix = b.prefix end
    end
  end
  local down, across = axis_items(self._down_nodes), axis_items(self._across_nodes)
  local values, labels = {}, {}
  for i = 1, #down do
    local vrow, lrow = {}, {}
    for j = 1, #across do
      local a = self:aggregate(prefix .. down[i].key .. "!" .. across[j].key, agg)
      if a then
        vrow[j], lrow[j] = a.value, a.label
      else
        vrow[j], lrow[j] = null, ""
      end
    end
    values[i], labels[i] = vrow, lrow
  end
  return { down = down, across = across, values = values, labels = labels }
end

return M
