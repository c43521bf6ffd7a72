-- sfreports.paging.keys: the columns that can page a report (a filterable date,
-- datetime, number, percent or currency column that is not a lookup, whose type allows
-- the comparison operators), the caller's keys checked, and the report's own columns
-- ranked by how many distinct values the first run shows.
local errors = require "sfreports.errors"
local D = require "sfreports.describe"
local rowset = require "sfreports.paging.rowset"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, sort = string.format, table.sort
local key_value = rowset.key_value

local K = {}

-- Types whose filters compare (greaterOrEqual & co.) in the same order sortBy uses.
local ORDERED = { date = true, datetime = true, int = true, double = true, percent = true, currency = true }
local NEEDED_OPS = { "equals", "notEqual", "greaterThan", "greaterOrEqual", "lessThan", "lessOrEqual" }

-- The column named `name` (resolved by API name or label) and its detailColumnInfo entry.
local function column_info(describe, name)
  local api, c = D.resolve_column(describe, name)
  if not api then return nil, c end
  local ext = describe.reportExtendedMetadata
  local info = type(ext) == "table" and type(ext.detailColumnInfo) == "table" and ext.detailColumnInfo[api]
  return c, info
end

-- The first operator a key's pages use that `list` lacks (nil: none, or no list to check).
local function missing_operator(list)
  if not list then return nil end
  local set = {}
  for _, op in ipairs(list) do set[op] = true end
  for _, op in ipairs(NEEDED_OPS) do
    if not set[op] then return op end
  end
  return nil
end

-- Why a column cannot be a paging key, or nil when it can.
local function unusable(describe, name)
  local c, info = column_info(describe, name)
  if not c then return "is not a column of this report type" end
  if c.filterable == false then return "is not filterable" end
  if not ORDERED[c.dataType or ""] then
    return format("is a %s column; a key must be a date, datetime, number, percent or currency column",
      tostring(c.dataType))
  end
  if type(info) == "table" and info.isLookup == true then
    return "is a lookup column (its filters apply to the name, not the value)"
  end
  -- the report type's operator map, else the API's documented list (sfreports.describe)
  local missing = missing_operator(D.allowed_operators(describe, c.dataType))
  if missing then return format("does not allow the %s operator", missing) end
  return nil, c
end

local function index_of(list, v)
  for i, x in ipairs(list) do if x == v then return i end end
  return nil
end

-- Ordered, usable columns among `columns`, ranked by distinct values in `report` (most first).
local function rank_keys(describe, columns, report)
  local cands = {}
  for _, name in ipairs(columns) do
    if not unusable(describe, name) then cands[#cands + 1] = { name = name, distinct = 0 } end
  end
  if report and #cands > 0 then
    local cols = report:columns()
    for _, c in ipairs(cands) do
      local idx
      for i, col in ipairs(cols) do if col.name == c.name then idx = i end end
      if idx then
        local seen, n = {}, 0
        for row in report:rows() do
          local v = key_value(row.data_cells[idx])
          if v ~= nil and not seen[v] then seen[v] = true; n = n + 1 end
        end
        c.distinct = n
      end
    end
  end
  for i, c in ipairs(cands) do c.pos = i end
  sort(cands, function(a, b)
    if a.distinct ~= b.distinct then return a.distinct > b.distinct end
    return a.pos < b.pos
  end)
  local out = {}
  for i, c in ipairs(cands) do out[i] = c.name end
  return out
end

-- A column to add when the report shows no usable key: prefer a datetime (created
-- date), then a date, then a number.
local function describe_key(describe)
  local rtm = describe.reportTypeMetadata
  local best, best_rank
  local RANK = { datetime = 1, date = 2, currency = 3, double = 4, int = 5, percent = 6 }
  for _, cat in ipairs(type(rtm) == "table" and type(rtm.categories) == "table" and rtm.categories or {}) do
    local cols = type(cat) == "table" and type(cat.columns) == "table" and cat.columns or {}
    local names = {}
    for name in pairs(cols) do names[#names + 1] = name end
    sort(names)
    for _, name in ipairs(names) do
      local _, c = unusable(describe, name)
      if c then
        local r = RANK[c.dataType] + (name:find("CREATED") and 0 or 0.5)
        if not best_rank or r < best_rank then best, best_rank = c.name, r end
      end
    end
  end
  return best
end

-- The caller's paging keys (opts.key: a column name or a list of them; none when nil),
-- each checked usable and named as the report type names it. Or nil and an `invalid`
-- error naming the first column that cannot be a key.
local function caller_keys(key, describe)
  local keys = {}
  if type(key) == "table" then
    for i, k in ipairs(key) do keys[i] = k end
  elseif key then
    keys[1] = key
  end
  for i, k in ipairs(keys) do
    local why, c = unusable(describe, k)
    if why then
      return nil, errors.invalid(format("column %s cannot be a paging key: it %s", k, why),
        { option = "key", column = k })
    end
    keys[i] = c.name
  end
  return keys
end

K.unusable, K.rank_keys, K.describe_key, K.caller_keys = unusable, rank_keys, describe_key, caller_keys
K.index_of = index_of

return K
