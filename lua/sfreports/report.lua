-- sfreports.report: the report model over a decoded report result.
--
-- A report result (Execute Sync, Instance Results, Query, or a dashboard component's
-- `reportResult`) is a fact map plus grouping trees plus metadata. This module turns any
-- of them into columns, rows and groups. It is pure Lua: it needs lua-cjson's null (via
-- sfreports.json) and sfreports.ids, never the client; sfreports.errors (whose error
-- values come from the C core) is loaded only to refuse a result. The decoded table is
-- never modified; everything the API sends stays reachable through `raw` fields. The
-- parts live in lua/sfreports/report/ (shape checks, cells, columns and trees, rows,
-- groups, blocks); they share the report object's fields and are not a public API.
--
--   local report, err = require("sfreports.report").new(decoded)  -- sfreports.report(decoded)
--   if not report then return nil, err end
--   for row in report:rows() do print(row.groups[1] and row.groups[1].label, row:label(1)) end
--
-- Bad shapes. new(decoded) returns a report, or nil and an error of kind "decode" whose
-- message names what is wrong (it never raises on what a server sends): a result that is
-- not a JSON object (null, true, a string, a number, an array), one without a non-empty
-- `factMap` object (`{}`, `[]`, an unfinished instance), and any container, fact-map
-- entry, row, cell, grouping node or aggregate of the wrong type (the rules are listed in
-- sfreports.report.shape). Nothing is dropped silently: a result is read whole or refused.
-- Labels are never refused: a number label is still a valid cell and becomes text
-- ("42", written as the writers write numbers); any other label that is not text (a
-- boolean, an object) reads as null, and displays fall back to the value as the writers do.
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
--   all_data            true only when `allData` is the boolean true and
--                       `hasExceededTabularRowLimit` is absent, null or false; a missing
--                       allData, or "false", null, 0, ... reads as truncated
--   truncated           not all_data
--   has_details         whether the result carries detail rows: `hasDetailRows` is not
--                       false, some fact-map entry has a `rows` array, and the report has
--                       detail columns (a result without a rows key claims none)
--   id, name            report id and name (reportMetadata, else attributes); nil if none
--   attributes          the `attributes` object, or nil (null in dashboard results)
--   instance            for Instance Results (`attributes.type == "ReportInstance"` or an
--                       `attributes.status`): { id, status, owner_id, completion_date,
--                       request_date, queryable, report_id }, values verbatim; else nil
--   status              instance status ("Success", "Running", ...) or nil
--   text_labels         true when every detail cell is a JSON object whose label is a
--                       string (what Salesforce sends); rows then have row.text_labels
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
--   row.data_cells   the raw `dataCells` array (what the writers read); a copy with text
--                    labels when a cell's label is a number (see Bad shapes)
--   row.groups       array of groups the row sits in: down levels then across levels,
--                    aligned with grouping_columns(); one table shared by all rows of a
--                    fact-map entry (it identifies the entry), so treat it as read-only
--   row.key          the fact-map key the row came from ("0_1!2", "T!T", "B1#0!T")
--   row.index        1-based position in rows() order
--   row.raw          the raw row object ({ dataCells = ... } plus anything newer)
--   row.text_labels  true when every cell of data_cells is a table whose label is a
--                    string, in columns() order (report.text_labels, and no slots): the
--                    writers skip their per-cell type checks then
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
--             int/double/percent/currency columns become numbers); on Lua 5.3+ a whole
--             number in an `int` column is an integer (math.type "integer", prints "4"),
--             and so are int aggregates (RowCount and unique counts `u!...` too when
--             aggregateColumnInfo gives no dataType); other types keep what the JSON
--             decoder gives (lua-cjson: floats); currency cells give
--             the amount as `value` and the ISO code (or null) as `currency`; booleans
--             ("true"/"false" strings in boolean columns become booleans); date, datetime
--             and time stay the ISO strings Salesforce sends; JSON null is `report.null`.
--   label     the display text as sent (e.g. "-" for an empty cell, "16/01/2016"), or
--             JSON null; a number label becomes text, another non-text label null.
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
-- Unknown prefixes and unresolvable paths never fail; `raw` is always kept.
--
-- Helpers: report.typed(value, data_type) -> typed value [, currency code];
-- report.parse_key(key) -> block prefix ("" if none), down path, across path (or nil);
-- report.is_report(v).
local base = require "sfreports.report.base"
local ids = require "sfreports.ids"
local shape = require "sfreports.report.shape"
local cells = require "sfreports.report.cells"
local keys = require "sfreports.report.keys"
local columns = require "sfreports.report.columns"
local rows = require "sfreports.report.rows"

local null, EMPTY, tbl, str = base.null, base.EMPTY, base.tbl, base.str
local type, pairs, setmetatable, getmetatable, require = type, pairs, setmetatable, getmetatable, require

local M = {}
M.null = null
M.typed = cells.typed
M.parse_key = keys.parse_key

local Report = {}
Report.__index = Report
Report.null = null -- so that r.null works as well as require("sfreports.report").null
M.Report = Report

-- A report or instance id found in a refused result, for the error's context (only a
-- well-formed id: the rest of the body is not trusted).
local function context_ids(d)
  local out = {}
  if type(d) ~= "table" then return out end
  local meta, attrs = tbl(d.reportMetadata), tbl(d.attributes)
  local rid = meta and meta.id or attrs and attrs.reportId
  if ids.check(rid) then out.report_id = rid end
  if attrs and attrs.type == "ReportInstance" and ids.check(attrs.id) then out.instance_id = attrs.id end
  return out
end

local function refuse(d, message)
  -- loaded here, not at the top: errors need the C core, and a well-formed result is
  -- read without it (bench/report_bench.lua, scripts over saved JSON)
  local errors = require "sfreports.errors"
  local fields = context_ids(d)
  fields.retryable = false
  return nil, errors.new("decode", message, fields)
end

local function absent_or_false(v) return v == nil or v == null or v == false end

-- Whether any fact-map entry has a rows array.
local function any_rows(fm)
  for _, e in pairs(fm) do
    if type(e.rows) == "table" then return true end
  end
  return false
end

-- Builds a report object from a decoded report result: the report, or nil and a
-- `decode` error (see Bad shapes). A dashboard component ({ componentId, reportResult,
-- ... }) is unwrapped to its reportResult.
function M.new(decoded)
  if type(decoded) == "table" and decoded.factMap == nil and type(decoded.reportResult) == "table" then
    decoded = decoded.reportResult
  end
  local ok, fixed, plain = shape.check(decoded)
  if not ok then return refuse(decoded, fixed) end
  local meta = tbl(decoded.reportMetadata) or EMPTY
  local ext = tbl(decoded.reportExtendedMetadata) or EMPTY
  local attrs = tbl(decoded.attributes)
  local self = setmetatable({
    raw = decoded,
    metadata = meta,
    extended_metadata = ext,
    attributes = attrs,
  }, Report)

  self.format = str(meta.reportFormat) or columns.infer_format(decoded)
  -- only the boolean true says complete: a missing or odd allData must not pass a cut
  -- result off as whole
  self.all_data = decoded.allData == true and absent_or_false(decoded.hasExceededTabularRowLimit)
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

  local fm = decoded.factMap
  self._fm = fm
  self._fixed_cells = fixed or nil
  self.text_labels = plain
  self._columns = columns.detail(meta, ext)
  self._aggs = columns.aggregate(meta, ext)
  self._gcols, self._down_cols, self._across_cols = columns.grouping(meta, ext, decoded)
  self._down_nodes, self._down_index = columns.walk_axis(decoded.groupingsDown, "down", self._down_cols)
  self._across_nodes, self._across_index = columns.walk_axis(decoded.groupingsAcross, "across", self._across_cols)
  self._multi = keys.prefixed(fm)
  self._row_mt = rows.metatable(self)
  if self._multi then self._blocks = require("sfreports.report.blocks").build(self) end
  self.has_details = decoded.hasDetailRows ~= false and any_rows(fm) and #self._columns > 0
  return self
end

setmetatable(M, { __call = function(_, decoded) return M.new(decoded) end })

function M.is_report(v)
  return type(v) == "table" and getmetatable(v) == Report
end

function Report:columns() return self._columns end
function Report:grouping_columns() return self._gcols end
function Report:aggregate_columns() return self._aggs end
-- sfreports.report.blocks is loaded only for a report that has blocks.
function Report:blocks()
  if not self._multi then return {} end
  return require("sfreports.report.blocks").describe(self)
end
Report.rows = rows.iterate
Report.row_count = rows.count
-- sfreports.report.groups is loaded on first use: reading rows never needs it.
local function groups_method(name)
  return function(...) return require("sfreports.report.groups")[name](...) end
end
Report.groups = groups_method("list")
Report.group = groups_method("get")
Report.aggregate = groups_method("aggregate")
Report.total = groups_method("total")
Report.grid = groups_method("grid")

return M
