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
-- than the rest of reading a report. So the fact map first goes through `scan`, which
-- makes no call per cell and only says "every entry, row, cell and aggregate has the
-- right type and every label is text" (what Salesforce sends) or "look closer"; only in
-- the second case does the careful check below run, and it alone states the rules and
-- their messages.
local base = require "sfreports.report.base"
local cells = require "sfreports.report.cells"

local null = base.null
local type, pairs, next, tostring, pcall = type, pairs, next, tostring, pcall
local format, gsub, sub = string.format, string.gsub, string.sub
local concat = table.concat

local shape = {}

-- How a decoded JSON value is named in messages.
local function json_type(v)
  if v == nil then return "missing" end
  if v == null then return "null" end
  local t = type(v)
  if t == "boolean" then return tostring(v) end
  if t == "string" then return "a string" end
  if t == "number" then return "a number" end
  if t == "table" then
    local k = next(v)
    if k == nil then return "an empty object or array" end
    if type(k) == "number" then return "an array" end
    return "an object"
  end
  return "a " .. t
end
shape.json_type = json_type

-- A fact-map key as it appears in a message: bounded, without control characters.
local function quoted(k)
  local s = gsub(tostring(k), "[%c\127]", "?")
  if #s > 40 then s = sub(s, 1, 40) .. "..." end
  return '"' .. s .. '"'
end

local function bad(where, v, expected)
  return nil, format("report result: %s is %s, expected %s", where, json_type(v), expected)
end

-- Tables decoded from JSON arrays have the keys 1..n, objects string keys; an empty
-- table is both. (t[1] first: these run for every row and cell.)
local function is_array(t)
  return t[1] ~= nil or next(t) == nil
end

local function is_object(t)
  return t[1] == nil
end

-- An optional container: absent, null, or a table of the right kind.
local function optional(v, where, want_array)
  if v == nil or v == null then return true end
  if type(v) == "table" and (want_array and is_array(v) or not want_array and is_object(v)) then
    return true
  end
  return bad(where, v, want_array and "an array" or "an object")
end

-- The dataCells of row i of the entry `key`: nil, message when a cell is wrong; else the
-- array to use (a copy when a label is a number). This runs for every cell: messages
-- are built only on failure.
local function row_cells(dc, key, i)
  local copy
  for j = 1, #dc do
    local c = dc[j]
    if type(c) ~= "table" or c[1] ~= nil then
      return bad(format("factMap[%s].rows[%d].dataCells[%d]", quoted(key), i, j), c, "an object")
    end
    local l = c.label
    if type(l) == "number" then
      if not copy then
        copy = {}
        for n = 1, #dc do copy[n] = dc[n] end
      end
      local fixed = {}
      for k, v in pairs(c) do fixed[k] = v end
      fixed.label = cells.label_text(l)
      copy[j] = fixed
    end
  end
  return copy or dc
end

local function check_rows(key, rows, fixed)
  for i = 1, #rows do
    local r = rows[i]
    if type(r) ~= "table" or not is_object(r) then
      return bad(format("factMap[%s].rows[%d]", quoted(key), i), r, "an object")
    end
    local dc = r.dataCells
    if type(dc) ~= "table" or not is_array(dc) then
      return bad(format("factMap[%s].rows[%d].dataCells", quoted(key), i), dc, "an array")
    end
    local use, err = row_cells(dc, key, i)
    if not use then return nil, err end
    if use ~= dc then fixed[r] = use end
  end
  return true
end

local function check_aggregates(key, aggs)
  for i = 1, #aggs do
    local a = aggs[i]
    if type(a) ~= "table" or not is_object(a) then
      return bad(format("factMap[%s].aggregates[%d]", quoted(key), i), a, "an object")
    end
  end
  return true
end

-- One fact-map entry: its rows (and their cells) and its aggregates.
local function check_entry(key, e, fixed)
  if type(e) ~= "table" or not is_object(e) then return bad("factMap[" .. quoted(key) .. "]", e, "an object") end
  local rows, aggs = e.rows, e.aggregates
  if rows ~= nil and rows ~= null then
    if type(rows) ~= "table" or not is_array(rows) then
      return bad("factMap[" .. quoted(key) .. "].rows", rows, "an array")
    end
    local ok, err = check_rows(key, rows, fixed)
    if not ok then return nil, err end
  end
  if aggs ~= nil and aggs ~= null then
    if type(aggs) ~= "table" or not is_array(aggs) then
      return bad("factMap[" .. quoted(key) .. "].aggregates", aggs, "an array")
    end
    return check_aggregates(key, aggs)
  end
  return true
end

-- The path of a node list in a message: name.groupings[i].groupings[j]... from the
-- indices trail[1..depth] (built only when something is wrong).
local function trail_path(name, trail, depth)
  local parts = { name, ".groupings" }
  for d = 1, depth do parts[#parts + 1] = format("[%d].groupings", trail[d]) end
  return concat(parts)
end

-- A grouping tree's node list, recursively; trail[1..depth] lead to it from the tree.
local function check_nodes(list, name, trail, depth)
  if list == nil or list == null then return true end
  if type(list) ~= "table" or not is_array(list) then
    return bad(trail_path(name, trail, depth), list, "an array")
  end
  for i = 1, #list do
    local node = list[i]
    if type(node) ~= "table" or not is_object(node) then
      return bad(format("%s[%d]", trail_path(name, trail, depth), i), node, "an object")
    end
    trail[depth + 1] = i
    local ok, err = check_nodes(node.groupings, name, trail, depth + 1)
    if not ok then return nil, err end
  end
  return true
end

local function check_tree(tree, name)
  local ok, err = optional(tree, name, false)
  if not ok or tree == nil or tree == null then return ok, err end
  return check_nodes(tree.groupings, name, {}, 0)
end

-- The optional containers of the metadata: field path, parent key, want an array.
local META_FIELDS = {
  { "reportMetadata", "detailColumns", true }, { "reportMetadata", "aggregates", true },
  { "reportMetadata", "groupingsDown", true }, { "reportMetadata", "groupingsAcross", true },
  { "reportExtendedMetadata", "detailColumnInfo", false },
  { "reportExtendedMetadata", "aggregateColumnInfo", false },
  { "reportExtendedMetadata", "groupingColumnInfo", false },
}

local function check_metadata(d)
  for _, name in pairs({ "reportMetadata", "reportExtendedMetadata", "attributes" }) do
    local ok, err = optional(d[name], name, false)
    if not ok then return nil, err end
  end
  for _, f in pairs(META_FIELDS) do
    local parent = d[f[1]]
    if type(parent) == "table" then
      local ok, err = optional(parent[f[2]], f[1] .. "." .. f[2], f[3])
      if not ok then return nil, err end
    end
  end
  return true
end

-- Why a result without a fact map is not a report.
local function no_fact_map(d)
  if next(d) == nil then return "report result: expected a JSON object with a factMap, got an empty object or array" end
  local attrs = d.attributes
  local status = type(attrs) == "table" and attrs.status
  if type(status) == "string" then
    return format("report result: no factMap (instance status %s: not finished, or no results)", quoted(status))
  end
  return "report result: no factMap"
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

-- Checks a decoded result (after a dashboard component is unwrapped). Returns true, the
-- map of normalised dataCells (false when none) and whether every cell is an object with
-- a text label (the scan passed); or nil and a message.
function shape.check(d)
  if type(d) ~= "table" then return nil, "report result: expected a JSON object, got " .. json_type(d) end
  if not is_object(d) then return nil, "report result: expected a JSON object, got an array" end
  local fm = d.factMap
  if fm == nil or fm == null then return nil, no_fact_map(d) end
  if type(fm) ~= "table" or not is_object(fm) then return bad("factMap", fm, "an object") end
  if next(fm) == nil then return nil, "report result: factMap is empty" end
  local ok, err = check_metadata(d)
  if not ok then return nil, err end
  ok, err = check_tree(d.groupingsDown, "groupingsDown")
  if not ok then return nil, err end
  ok, err = check_tree(d.groupingsAcross, "groupingsAcross")
  if not ok then return nil, err end
  local scanned, plain = pcall(scan, fm)
  if scanned and plain then return true, false, true end
  local fixed = {}
  for k, e in pairs(fm) do
    ok, err = check_entry(k, e, fixed)
    if not ok then return nil, err end
  end
  return true, next(fixed) ~= nil and fixed, false
end

return shape
