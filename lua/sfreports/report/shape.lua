-- sfreports.report.shape: the checks a decoded report result passes before the model
-- is built, so that whatever a server sends is either a report or one `decode` error
-- naming what is wrong, never a raise and never rows silently dropped. Rules:
--   * the result is a JSON object with a non-empty `factMap` object;
--   * reportMetadata, reportExtendedMetadata, attributes, the grouping trees, their
--     `groupings` lists, detailColumns, aggregates, the *ColumnInfo maps, and each
--     entry's `rows` and `aggregates` may be absent or null, else have the right type;
--   * every fact-map entry, row, grouping node and aggregate is an object; every row has
--     a `dataCells` array, every cell is an object;
--   * labels are never refused: a number label becomes text, any other label that is
--     not text is no label (sfreports.report.cells.label_text).
-- Cells whose label is a number are copied with the text label, for the writers (the
-- decoded table is never modified): check returns the map raw row -> dataCells copy, or
-- false when there is none.
--
-- Cost. These checks visit every cell, and a call per cell (type()) costs more on Lua 5.4
-- than the rest of reading a report. So the fact map first goes through a scan (`scan`
-- below, or the same in C on PUC Lua: core.scan_facts), which makes no call per cell and
-- only says "every entry, row, cell and aggregate has the right type and every label is
-- text" (what Salesforce sends) or "look closer"; the grouping trees and the metadata
-- have such a pass too. Only when one says "look closer" does the careful check run
-- (sfreports.report.careful), and it alone states the rules and their messages.
local base = require "sfreports.report.base"

local null, is_array, is_object = base.null, base.is_array, base.is_object
local type, next, pcall, rawget, require, ipairs, assert = type, next, pcall, rawget, require, ipairs, assert

-- the careful check and its messages (sfreports.report.careful), loaded when a fast
-- scan stops or a check fails
local function careful() return require "sfreports.report.careful" end

local shape = {}

-- Whether an optional container fits: absent, null, or a table of the right kind.
local function fits(v, want_array)
  if v == nil or v == null then return true end
  if type(v) ~= "table" then return false end
  if want_array then return is_array(v) end
  return is_object(v)
end

-- The same as a check: true, or nil and the message naming `where`.
local function optional(v, where, want_array)
  if fits(v, want_array) then return true end
  return careful().bad(where, v, want_array and "an array" or "an object")
end

-- The optional containers of the metadata: field path, parent key, want an array.
local TOP = { "reportMetadata", "reportExtendedMetadata", "attributes" }
local META_FIELDS = {
  { "reportMetadata", "detailColumns", true }, { "reportMetadata", "aggregates", true },
  { "reportMetadata", "groupingsDown", true }, { "reportMetadata", "groupingsAcross", true },
  { "reportExtendedMetadata", "detailColumnInfo", false },
  { "reportExtendedMetadata", "aggregateColumnInfo", false },
  { "reportExtendedMetadata", "groupingColumnInfo", false },
}

-- The usual case in one pass without a call per field: both metadata objects present,
-- attributes absent or an object, and each container absent, null or of its kind.
-- false sends the result through check_metadata's field-by-field check.
local META_ARRAYS, META_OBJECTS = {}, {} -- (from META_FIELDS)
for _, f in ipairs(META_FIELDS) do
  if f[1] == "reportMetadata" and f[3] then META_ARRAYS[#META_ARRAYS + 1] = f[2] end
  if f[1] == "reportExtendedMetadata" and not f[3] then META_OBJECTS[#META_OBJECTS + 1] = f[2] end
end
assert(#META_ARRAYS + #META_OBJECTS == #META_FIELDS, "shape: a metadata container this pass does not know")
local N_ARRAYS, N_OBJECTS = #META_ARRAYS, #META_OBJECTS
local function metadata_plain(d)
  local m, x, a = d.reportMetadata, d.reportExtendedMetadata, d.attributes
  if type(m) ~= "table" or m[1] ~= nil or type(x) ~= "table" or x[1] ~= nil then return false end
  if a ~= nil and (type(a) ~= "table" or a[1] ~= nil) then return false end
  for i = 1, N_ARRAYS do
    local v = m[META_ARRAYS[i]]
    if v ~= nil and v ~= null and (type(v) ~= "table" or (v[1] == nil and next(v) ~= nil)) then return false end
  end
  for i = 1, N_OBJECTS do
    local v = x[META_OBJECTS[i]]
    if v ~= nil and v ~= null and (type(v) ~= "table" or v[1] ~= nil) then return false end
  end
  return true
end

-- (Runs once per report, for every report of a run_many: no table, string or closure
-- is made unless something is wrong.)
local function check_metadata(d)
  if metadata_plain(d) then return true end
  for i = 1, #TOP do
    local name = TOP[i]
    if not fits(d[name], false) then return optional(d[name], name, false) end
  end
  for i = 1, #META_FIELDS do
    local f = META_FIELDS[i]
    local parent = d[f[1]]
    if type(parent) == "table" and not fits(parent[f[2]], f[3]) then
      return optional(parent[f[2]], f[1] .. "." .. f[2], f[3])
    end
  end
  return true
end

-- The fast path over a grouping tree's node lists (see scan below for how it works):
-- true when every list is an array of objects whose `key` is text, as Salesforce sends
-- them; false (or a raise, caught by the caller) when the careful check must look.
local function scan_nodes(list)
  if list == nil or list == null then return true end
  if list[1] == nil then return next(list) == nil end
  local s = ""
  for i = 1, #list do
    local node = list[i]
    if node.key < s or not scan_nodes(node.groupings) then return false end
  end
  return true
end

local function tree_ok(tree, name)
  local ok, err = optional(tree, name, false)
  if not ok or tree == nil or tree == null then return ok, err end
  local nodes = tree.groupings
  -- a tabular report's trees hold no node: nothing to scan
  if nodes == nil or nodes == null or (type(nodes) == "table" and next(nodes) == nil) then return true end
  local scanned, plain = pcall(scan_nodes, nodes)
  if scanned and plain then return true end
  return careful().check_tree(tree, name)
end

-- The fast path over the fact map: true when every entry and row is an object, every
-- `rows`, `dataCells` and `aggregates` an array (or absent/null where allowed), every cell
-- and aggregate an object whose label is a string; false (or a raise,
-- caught by the caller) when anything else is there. No call per row or cell: indexing
-- raises on a value that is neither a table nor a string, a string has no `label`,
-- `dataCells` or [1] (checked once on ""), `dc[1]` of a missing dataCells raises, `next`
-- raises on a string, and `l < ""` raises unless the label is a string (a string compares
-- only with a string) and is false for every string.
-- Rows, cells and aggregates are known to be objects by a string key they hold (a row's
-- dataCells, a cell's or an aggregate's string label): a decoded JSON array has no string
-- keys, so they are not also looked at for an [1]. (A mixed Lua table built by hand, or a
-- userdata with an __index, is what only the careful check would refuse: no JSON decoder
-- makes either.) An aggregate without a string label is left to the careful check.
local function scan(fm)
  local s = ""
  if s.label ~= nil or s.dataCells ~= nil or s[1] ~= nil then return false end
  for _, e in pairs(fm) do
    if type(e) ~= "table" or e[1] ~= nil then return false end
    local rows = e.rows
    if rows ~= nil and rows ~= null then
      -- rows[1] raises unless rows is a table or a string, next() raises on a string
      if rows[1] == nil and next(rows) ~= nil then return false end
      for i = 1, #rows do
        -- a row that is not a table raises here or (a string: no dataCells) just below
        local dc = rows[i].dataCells
        if dc[1] == nil and next(dc) ~= nil then return false end
        for j = 1, #dc do
          if dc[j].label < s then return false end
        end
      end
    end
    local aggs = e.aggregates
    if aggs ~= nil and aggs ~= null then
      if aggs[1] == nil and next(aggs) ~= nil then return false end
      for i = 1, #aggs do
        if aggs[i].label < s then return false end
      end
    end
  end
  return true
end

shape.scan_lua = scan -- (for the spec that holds the two scans to the same answers)

-- The scan this runtime runs fastest: on PUC Lua the C core's (core.scan_facts, the same
-- question answered over the Lua API, 1.5 to 2 times fewer instructions than the loop
-- above on Lua 5.4), on LuaJIT (which compiles the loop above into faster code than any
-- C over its API) or without the C core built (scripts reading saved results), `scan`.
-- Chosen at the first check, so that reading a report never loads the core by itself.
local scan_facts
local function fast_scan(fm)
  if scan_facts == nil then
    local ok, core = false, nil
    if not rawget(_G, "jit") then ok, core = pcall(require, "sfreports.core") end
    local c_scan = ok and type(core) == "table" and core.scan_facts
    scan_facts = c_scan and function(t) return c_scan(t, null) end or scan
  end
  return scan_facts(fm)
end

-- Checks a decoded result (after a dashboard component is unwrapped). Returns true, the
-- map of normalised dataCells (false when none) and whether every cell is an object with
-- a text label (the scan passed); or nil and a message.
function shape.check(d)
  if type(d) ~= "table" then return nil, "report result: expected a JSON object, got " .. careful().json_type(d) end
  if not is_object(d) then return nil, "report result: expected a JSON object, got an array" end
  local fm = d.factMap
  if fm == nil or fm == null then return nil, careful().no_fact_map(d) end
  if type(fm) ~= "table" or not is_object(fm) then return careful().bad("factMap", fm, "an object") end
  if next(fm) == nil then return nil, "report result: factMap is empty" end
  local ok, err = check_metadata(d)
  if not ok then return nil, err end
  ok, err = tree_ok(d.groupingsDown, "groupingsDown")
  if not ok then return nil, err end
  ok, err = tree_ok(d.groupingsAcross, "groupingsAcross")
  if not ok then return nil, err end
  local scanned, plain = pcall(fast_scan, fm)
  if scanned and plain then return true, false, true end
  local fixed
  ok, fixed = careful().check_entries(fm)
  if not ok then return nil, fixed end
  return true, fixed, false
end

return shape
