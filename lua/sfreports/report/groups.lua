-- sfreports.report.groups: fact-map entries as groups with typed aggregates, in tree
-- order, and the aggregate grid of a matrix (see "Groups" and report:grid in
-- sfreports.report). Works on the report object's fields; part of the report model.
local base = require "sfreports.report.base"
local cells = require "sfreports.report.cells"
local columns = require "sfreports.report.columns"
local blocks = require "sfreports.report.blocks"
local keys = require "sfreports.report.keys"

local null, EMPTY, tbl = base.null, base.EMPTY, base.tbl
local pairs, ipairs, tostring = pairs, ipairs, tostring
local sort = table.sort

local groups = {}

-- The typed aggregates of one entry: an array in column order and a map by name.
local function entry_aggregates(self, raw_aggs)
  local aggs = {}
  if not raw_aggs then return aggs end
  local cols = self._aggs
  for i = 1, #raw_aggs do
    local col = cols[i]
    local a = cells.make(raw_aggs[i], col, cells.aggregate_type(col))
    a.id = nil
    a.name = col and col.name
    aggs[i] = a
    if a.name and aggs[a.name] == nil then aggs[a.name] = a end
  end
  return aggs
end

local function make_entry(self, key, raw, block, dkey, akey, dnode, anode, dpath, apath)
  local rows = tbl(raw.rows)
  local down, across = dpath or (dnode and dnode.path) or EMPTY, apath or (anode and anode.path) or EMPTY
  local dleaf = dnode and dnode.leaf or (dkey == "T" and #self._down_nodes == 0)
  local aleaf = anode and anode.leaf or (akey == "T" and #self._across_nodes == 0)
  return {
    key = key, block = block, down_key = dkey, across_key = akey,
    down = down, across = across, groups = columns.concat2(down, across),
    aggregates = entry_aggregates(self, tbl(raw.aggregates)), row_count = rows and #rows or nil,
    is_grand_total = dkey == "T" and akey == "T", is_leaf = (dleaf and aleaf) and true or false,
    raw = raw,
  }
end

-- Entries of a prefixed result, block by block.
local function add_block_entries(self, add)
  for _, b in ipairs(blocks.of(self)) do
    for _, e in ipairs(b.entries) do
      local dpath, dnode = blocks.resolve_path(self._down_index, "down", b.prefix, e.down, e.dpath)
      local apath, anode = blocks.resolve_path(self._across_index, "across", b.prefix, e.across, e.apath)
      add(make_entry(self, e.key, e.raw, b.id, e.down, e.across, dnode, anode, dpath, apath))
    end
  end
end

-- Entries of a plain result: down nodes then "T", each with across nodes then "T".
local function add_tree_entries(self, add, seen)
  local fm = self._fm
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
      if raw and not seen[key] then
        add(make_entry(self, key, raw, nil, d.key, a.key, d.path and d, a.path and a))
      end
    end
  end
end

local function build(self)
  local fm = self._fm
  local list, by_key, seen = {}, {}, {}
  local function add(entry)
    list[#list + 1] = entry
    by_key[entry.key] = entry
    seen[entry.key] = true
  end
  if self._multi then add_block_entries(self, add) else add_tree_entries(self, add, seen) end
  -- keys no tree node explains, kept so that nothing is lost
  local rest = {}
  for k in pairs(fm) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do
    local prefix, down, across = keys.parse_key(k)
    local block = prefix and prefix ~= "" and keys.block_id(prefix) or nil
    add(make_entry(self, k, fm[k], block, down, across, nil, nil, nil, nil))
  end
  self._groups, self._group_index = list, by_key
end

function groups.list(self)
  if not self._groups then build(self) end
  return self._groups
end

function groups.get(self, key)
  if not self._groups then build(self) end
  return self._group_index[key]
end

function groups.aggregate(self, key, agg)
  local e = groups.get(self, key)
  if not e then return nil end
  return e.aggregates[agg]
end

function groups.total(self, agg)
  if self._multi then
    -- the first block's grand total, unless a plain T!T exists
    local e = groups.get(self, "T!T")
    if e then return e.aggregates[agg] end
    local b = blocks.of(self)[1]
    return b and groups.aggregate(self, b.prefix .. "T!T", agg) or nil
  end
  return groups.aggregate(self, "T!T", agg)
end

local function axis_items(nodes)
  local items = {}
  for i, n in ipairs(nodes) do items[i] = { key = n.key, level = n.level, groups = n.path } end
  items[#items + 1] = { key = "T", level = 0, groups = EMPTY }
  return items
end

function groups.grid(self, agg, block)
  if agg == nil then agg = 1 end
  local prefix = ""
  if block ~= nil then
    for _, b in ipairs(blocks.of(self)) do
      if b.id == block then prefix = b.prefix end
    end
  end
  local down, across = axis_items(self._down_nodes), axis_items(self._across_nodes)
  local values, labels = {}, {}
  for i = 1, #down do
    local vrow, lrow = {}, {}
    for j = 1, #across do
      local a = groups.aggregate(self, prefix .. down[i].key .. "!" .. across[j].key, agg)
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

return groups
