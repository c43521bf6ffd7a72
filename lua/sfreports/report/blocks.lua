-- sfreports.report.blocks: MULTI_BLOCK (joined) results, whose fact-map keys carry a
-- block prefix ("B0#0!T"). Groups the fact-map entries by block, picks the entries whose
-- rows a block yields, and maps each block's cells to columns (see "MULTI_BLOCK" in
-- sfreports.report). Works on the report object's fields (_fm, _columns, the axis
-- indexes); part of the report model.
local base = require "sfreports.report.base"
local keys = require "sfreports.report.keys"
local columns = require "sfreports.report.columns"

local null, EMPTY, tbl = base.null, base.EMPTY, base.tbl
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format = string.format
local sort = table.sort
local parse_key, parse_path, path_less, is_prefix = keys.parse_key, keys.parse_path, keys.path_less, keys.is_prefix

local blocks = {}

-- Whether any fact-map key carries a block prefix (sfreports.report.keys).
blocks.prefixed = keys.prefixed

-- The columns()-index of each cell of a block's rows (nil: the identity). Columns named
-- with the block's prefix; else all detail columns when the widths match; else synthetic
-- columns, appended to the report's columns.
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
  for i = 1, width do
    local idx = #cols + 1
    cols[idx] = { name = block.prefix .. "COLUMN" .. i, label = format("%s column %d", block.id, i),
                  index = idx, synthetic = true }
    slots[i] = idx
  end
  return slots
end

-- The groups of one axis path of a block's key ("B1#0_1" or "0_1"), and the tree node
-- when the tree has it; else groups carrying only keys, one per level.
function blocks.resolve_path(index, axis, prefix, s, path)
  local node = index[prefix .. s] or index[s]
  if node then return node.path, node end
  local out = {}
  local key
  for l = 1, path and #path or 0 do
    key = key and (key .. "_" .. path[l]) or tostring(path[l])
    out[l] = { key = key, value = null, label = null, axis = axis, level = l, missing = true }
  end
  return out, nil
end
local resolve_path = blocks.resolve_path

-- Fact-map entries by block prefix, blocks in natural order, entries in tree order.
local function collect(fm)
  local by_prefix, list = {}, {}
  for k, e in pairs(fm) do
    local prefix, down, across = parse_key(k)
    if prefix and type(e) == "table" then
      local b = by_prefix[prefix]
      if not b then
        b = { prefix = prefix, id = keys.block_id(prefix), entries = {}, keys = {} }
        by_prefix[prefix] = b
        list[#list + 1] = b
      end
      b.entries[#b.entries + 1] = { key = k, down = down, across = across, raw = e,
                                    dpath = parse_path(down), apath = parse_path(across) }
    end
  end
  sort(list, function(a, b) return keys.natural_less(a.id, b.id) end)
  for _, b in ipairs(list) do
    sort(b.entries, function(x, y)
      if path_less(x.dpath, y.dpath) then return true end
      if path_less(y.dpath, x.dpath) then return false end
      if path_less(x.apath, y.apath) then return true end
      if path_less(y.apath, x.apath) then return false end
      return x.key < y.key
    end)
  end
  return list
end

-- The entries whose rows a block yields: the deepest ones holding rows (an entry is
-- dropped when another entry with rows lies below it).
local function deepest_with_rows(entries)
  local with_rows = {}
  for _, e in ipairs(entries) do
    local rows = tbl(e.raw.rows)
    if rows and #rows > 0 then with_rows[#with_rows + 1] = e end
  end
  local out = {}
  for _, e in ipairs(with_rows) do
    local shadowed = false
    for _, o in ipairs(with_rows) do
      if o ~= e and is_prefix(e.dpath, o.dpath) and is_prefix(e.apath, o.apath) then
        shadowed = true
        break
      end
    end
    if not shadowed then out[#out + 1] = e end
  end
  return out
end

-- Builds the blocks of a prefixed result: { prefix, id, entries, keys, segments, slots,
-- row_count }. Built when the report is made: a block may append synthetic columns,
-- and columns() must not change later.
function blocks.build(self)
  local gcols, ndown = self._gcols, #self._down_cols
  local list = collect(self._fm)
  for _, b in ipairs(list) do
    for i, e in ipairs(b.entries) do b.keys[i] = e.key end
    local segs, width, count = {}, nil, 0
    for _, e in ipairs(deepest_with_rows(b.entries)) do
      local dpath = resolve_path(self._down_index, "down", b.prefix, e.down, e.dpath)
      local apath = resolve_path(self._across_index, "across", b.prefix, e.across, e.apath)
      local rows = e.raw.rows
      if width == nil then width = #rows[1].dataCells end
      segs[#segs + 1] = { rows = rows, key = e.key, block = b.id,
                          groups = columns.aligned_groups(gcols, ndown, dpath, apath) }
      count = count + #rows
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
  for _, b in ipairs(list) do
    if b.prefix ~= "" or b.row_count > 0 then out[#out + 1] = b end
  end
  return out
end

-- The report's blocks ({} unless it is prefixed).
function blocks.of(self)
  return self._multi and self._blocks or EMPTY
end

-- The public description of the blocks (Report:blocks()).
function blocks.describe(self)
  local out = {}
  for i, b in ipairs(blocks.of(self)) do
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

return blocks
