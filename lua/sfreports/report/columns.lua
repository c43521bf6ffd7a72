-- sfreports.report.columns: the columns of a report (detail, grouping, aggregate) from
-- its metadata, and the grouping trees (groupingsDown / groupingsAcross) walked into
-- nodes and group objects. See sfreports.report for the shapes.
local base = require "sfreports.report.base"
local cells = require "sfreports.report.cells"

local null, EMPTY, tbl, str = base.null, base.EMPTY, base.tbl, base.str
local type, ipairs, tostring = type, ipairs, tostring
local format = string.format

local columns = {}

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

function columns.detail(meta, ext)
  return build_named_columns(meta.detailColumns, ext.detailColumnInfo, "Column")
end

function columns.aggregate(meta, ext)
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

-- The top-level node list of a groupingsDown / groupingsAcross object.
local function top_groupings(tree)
  local t = tbl(tree)
  return t and tbl(t.groupings) or EMPTY
end
columns.top_groupings = top_groupings

-- Grouping columns, down levels then across levels; a level the trees have but the
-- metadata does not describe still gets a column. Returns all, down ones, across ones.
function columns.grouping(meta, ext, raw)
  local infos = tbl(ext.groupingColumnInfo) or EMPTY
  local out, per_axis = {}, {}
  for _, axis in ipairs({ "down", "across" }) do
    local field = axis == "down" and "groupingsDown" or "groupingsAcross"
    local defs = tbl(meta[field]) or EMPTY
    local levels = #defs
    local depth = tree_depth(top_groupings(raw[field]), 1)
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

-- Walks one axis tree. Returns nodes in pre-order ({ key, level, path, leaf }, where
-- path[l] is the group at level l) and a key -> node index.
function columns.walk_axis(tree, axis, cols)
  local nodes, by_key = {}, {}
  local function visit(list, parent_path, parent_key, level)
    for i = 1, #list do
      local raw = list[i]
      if type(raw) == "table" then
        local key = str(raw.key) or (parent_key and (parent_key .. "_" .. (i - 1))) or tostring(i - 1)
        local col = cols[level]
        local g = cells.fill({ key = key, axis = axis, level = level, column = col, raw = raw }, raw,
          col and col.data_type)
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

-- Row groups aligned with the grouping columns `gcols` (the first `ndown` of them down
-- levels, then across levels). Always a new table: it also identifies the segment its
-- rows come from (see sfreports.report.rows).
function columns.aligned_groups(gcols, ndown, dpath, apath)
  local out = {}
  for i = 1, #gcols do
    local g
    if i <= ndown then g = dpath[i] else g = apath[i - ndown] end
    out[i] = g or missing_group(gcols[i])
  end
  return out
end

-- a..b, sharing a or b when the other is empty.
function columns.concat2(a, b)
  if #a == 0 then return b end
  if #b == 0 then return a end
  local out = {}
  for i = 1, #a do out[i] = a[i] end
  for i = 1, #b do out[#a + i] = b[i] end
  return out
end

-- The report format when reportMetadata does not give one.
function columns.infer_format(raw)
  if #top_groupings(raw.groupingsAcross) > 0 then return "MATRIX" end
  if #top_groupings(raw.groupingsDown) > 0 then return "SUMMARY" end
  return "TABULAR"
end

return columns
