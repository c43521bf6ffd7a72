-- sfreports.report.rows: detail rows, in the order documented in sfreports.report
-- ("Rows"): the segments (fact-map entries) rows() walks, the row objects and their
-- methods. Works on the report object's fields; part of the report model.
local base = require "sfreports.report.base"
local cells = require "sfreports.report.cells"
local columns = require "sfreports.report.columns"

local EMPTY, tbl = base.EMPTY, base.tbl
local type, ipairs, setmetatable, getmetatable, rawset = type, ipairs, setmetatable, getmetatable, rawset
local make_cell = cells.make

local rows = {}

local Row = {}
rows.Row = Row

local SEGMENT_FIELDS = { key = true, block = true, slots = true }

-- Rows are small tables { data_cells, groups, index, raw }; `key`, `block` and `slots`
-- come from the segment (fact-map entry) the row's groups table belongs to, and `cells`
-- is built on first use.
function rows.metatable(report)
  local mt = { report = report }
  local text_labels = report.text_labels == true and not report._multi
  mt.__index = function(row, k)
    if k == "text_labels" then
      return text_labels
    elseif SEGMENT_FIELDS[k] then
      local seg = report._seg_of[row.groups]
      return seg and seg[k]
    elseif k == "cells" then
      local cols = report._columns
      local dc = row.data_cells
      local slots = row.slots
      local list = {}
      for i = 1, #dc do
        list[i] = make_cell(dc[i], cols[slots and slots[i] or i])
      end
      rawset(row, "cells", list)
      return list
    end
    return Row[k]
  end
  return mt
end

local function leaves(nodes)
  local out = {}
  for i = 1, #nodes do
    if nodes[i].leaf then out[#out + 1] = nodes[i] end
  end
  if #out == 0 then out[1] = { key = "T", path = EMPTY } end
  return out
end

-- Segments of a result without blocks: leaf x leaf entries that hold rows, else T!T.
local function plain_segments(self)
  local segs = {}
  local fm, gcols, ndown = self._fm, self._gcols, #self._down_cols
  local dl, al = leaves(self._down_nodes), leaves(self._across_nodes)
  for i = 1, #dl do
    local d = dl[i]
    for j = 1, #al do
      local a = al[j]
      local key = d.key .. "!" .. a.key
      local e = fm[key]
      local list = e and tbl(e.rows)
      if list and #list > 0 then
        segs[#segs + 1] = { rows = list, key = key, groups = columns.aligned_groups(gcols, ndown, d.path, a.path) }
      end
    end
  end
  if #segs == 0 then
    local e = fm["T!T"]
    local list = e and tbl(e.rows)
    if list and #list > 0 then
      segs[1] = { rows = list, key = "T!T", groups = columns.aligned_groups(gcols, ndown, EMPTY, EMPTY) }
    end
  end
  return segs
end

-- The list of { rows, groups, key [, block, slots] } segments that rows() walks.
local function segments(self)
  local segs = self._segments
  if segs then return segs end
  if self._multi then
    segs = {}
    for _, b in ipairs(require("sfreports.report.blocks").of(self)) do
      for _, s in ipairs(b.segments) do segs[#segs + 1] = s end
    end
  else
    segs = plain_segments(self)
  end
  local seg_of = {}
  for _, seg in ipairs(segs) do seg_of[seg.groups] = seg end
  self._segments, self._seg_of = segs, seg_of
  return segs
end

-- Iterator over detail rows: for row in report:rows() do ... end
function rows.iterate(self)
  local segs = segments(self)
  local mt = self._row_mt
  local fixed = self._fixed_cells -- rows whose cells had labels converted to text
  local si, ri, n = 1, 0, 0
  local seg = segs[1]
  local seg_rows = seg and seg.rows
  return function()
    while seg do
      ri = ri + 1
      local r = seg_rows[ri]
      if r ~= nil then
        n = n + 1
        local dc = fixed and fixed[r] or r.dataCells
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

function rows.count(self)
  local n = 0
  for _, s in ipairs(segments(self)) do n = n + #s.rows end
  return n
end

---------------------------------------------------------------------------------------
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
  local list = self.cells
  for i = 1, #list do
    local c = list[i]
    local name = c.column and (c.column.name or c.column.label) or ("Column " .. i)
    out[name] = labels and c.label or c.value
  end
  return out
end

return rows
