-- sfreports.report.careful: the careful check of a decoded report result, every rule of
-- sfreports.report.shape with the message that names what is wrong, and the copies of
-- dataCells whose labels are numbers. Loaded only when shape's fast scans stop (a label
-- that is not text, a value of the wrong type, a metadata container of the wrong kind):
-- a result as Salesforce sends it never needs it.
local base = require "sfreports.report.base"
local cells = require "sfreports.report.cells"

local null, is_array, is_object = base.null, base.is_array, base.is_object
local type, pairs, next, tostring = type, pairs, next, tostring
local format, gsub, sub = string.format, string.gsub, string.sub
local concat = table.concat

local careful = {}

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
careful.json_type = json_type

-- A fact-map key as it appears in a message: bounded, without control characters.
local function quoted(k)
  local s = gsub(tostring(k), "[%c\127]", "?")
  if #s > 40 then s = sub(s, 1, 40) .. "..." end
  return '"' .. s .. '"'
end

function careful.bad(where, v, expected)
  return nil, format("report result: %s is %s, expected %s", where, json_type(v), expected)
end

-- The dataCells of row i of the entry `key`: nil, message when a cell is wrong; else the
-- array to use (a copy when a label is a number). This runs for every cell: messages
-- are built only on failure.
local function row_cells(dc, key, i)
  local copy
  for j = 1, #dc do
    local c = dc[j]
    if type(c) ~= "table" or c[1] ~= nil then
      return careful.bad(format("factMap[%s].rows[%d].dataCells[%d]", quoted(key), i, j), c, "an object")
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
      return careful.bad(format("factMap[%s].rows[%d]", quoted(key), i), r, "an object")
    end
    local dc = r.dataCells
    if type(dc) ~= "table" or not is_array(dc) then
      return careful.bad(format("factMap[%s].rows[%d].dataCells", quoted(key), i), dc, "an array")
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
      return careful.bad(format("factMap[%s].aggregates[%d]", quoted(key), i), a, "an object")
    end
  end
  return true
end

-- One fact-map entry: its rows (and their cells) and its aggregates.
local function check_entry(key, e, fixed)
  if type(e) ~= "table" or not is_object(e) then
    return careful.bad("factMap[" .. quoted(key) .. "]", e, "an object")
  end
  local rows, aggs = e.rows, e.aggregates
  if rows ~= nil and rows ~= null then
    if type(rows) ~= "table" or not is_array(rows) then
      return careful.bad("factMap[" .. quoted(key) .. "].rows", rows, "an array")
    end
    local ok, err = check_rows(key, rows, fixed)
    if not ok then return nil, err end
  end
  if aggs ~= nil and aggs ~= null then
    if type(aggs) ~= "table" or not is_array(aggs) then
      return careful.bad("factMap[" .. quoted(key) .. "].aggregates", aggs, "an array")
    end
    return check_aggregates(key, aggs)
  end
  return true
end

-- Every fact-map entry, carefully: true and the map raw row -> dataCells copy (false
-- when no label needed one), or nil and the message.
function careful.check_entries(fm)
  local fixed = {}
  for k, e in pairs(fm) do
    local ok, err = check_entry(k, e, fixed)
    if not ok then return nil, err end
  end
  return true, next(fixed) ~= nil and fixed
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
    return careful.bad(trail_path(name, trail, depth), list, "an array")
  end
  for i = 1, #list do
    local node = list[i]
    if type(node) ~= "table" or not is_object(node) then
      return careful.bad(format("%s[%d]", trail_path(name, trail, depth), i), node, "an object")
    end
    trail[depth + 1] = i
    local ok, err = check_nodes(node.groupings, name, trail, depth + 1)
    if not ok then return nil, err end
  end
  return true
end

-- A grouping tree (groupingsDown/Across): true, or nil and the message. (The tree itself
-- was checked an object or absent with the metadata.)
function careful.check_tree(tree, name)
  if tree == nil or tree == null then return true end
  return check_nodes(tree.groupings, name, {}, 0)
end

-- Why a result without a fact map is not a report.
function careful.no_fact_map(d)
  if next(d) == nil then return "report result: expected a JSON object with a factMap, got an empty object or array" end
  local attrs = d.attributes
  local status = type(attrs) == "table" and attrs.status
  if type(status) == "string" then
    return format("report result: no factMap (instance status %s: not finished, or no results)", quoted(status))
  end
  return "report result: no factMap"
end

return careful
