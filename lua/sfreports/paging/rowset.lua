-- sfreports.paging.rowset: rows as paging sees them: the key value of a cell (what page
-- filters and sorting compare), its text for a filter, and multisets of whole rows (every
-- cell's value and label, and the groups), which drop the rows a page repeats at a
-- keyset boundary so that identical rows are neither lost nor doubled.
local json = require "sfreports.json"

local type, ipairs, tostring = type, ipairs, tostring
local concat = table.concat
local NULL = json.null

local R = {}

local function is_null(v) return v == nil or v == NULL end

-- A raw cell value as what filters and sorting compare: currency -> amount.
local function key_value(cell)
  if type(cell) ~= "table" then return nil end
  local v = cell.value
  if type(v) == "table" then v = v.amount end
  if is_null(v) or v == "" then return nil end
  return v
end

-- Shortest decimal that reads back to the same double (filters are strings, §7.2).
local number_text = json.number_text

local function filter_value(v)
  if type(v) == "number" then return number_text(v) end
  return tostring(v)
end

local function canon(v)
  local t = type(v)
  if v == nil or v == NULL then return "\0" end
  if t == "number" then return number_text(v) end
  if t == "table" then return canon(v.amount) .. "\30" .. canon(v.currency) end
  return t .. ":" .. tostring(v)
end

-- Identity of a row: every cell's value and label, and its groups (multiset key).
local function row_tuple(row)
  local parts, n = {}, 0
  local dc = row.data_cells
  for i = 1, #dc do
    local c = dc[i]
    n = n + 1
    parts[n] = type(c) == "table" and (canon(c.value) .. "\30" .. canon(c.label)) or "\0"
  end
  local groups = row.groups
  for i = 1, #groups do
    n = n + 1
    parts[n] = canon(groups[i].value) .. "\30" .. canon(groups[i].label)
  end
  return concat(parts, "\31")
end

-- Drops row from a skip multiset (rows emitted already); true when it was there.
local function take(skip, row)
  if not skip or skip.n == 0 then return false end
  local t = row_tuple(row)
  local c = skip.tuples[t]
  if c and c > 0 then
    skip.tuples[t] = c - 1
    skip.n = skip.n - 1
    return true
  end
  return false
end

local function taken(skips, row)
  if skips then
    for i = 1, #skips do
      if take(skips[i], row) then return true end
    end
  end
  return false
end

-- Adds multiset m to a list of skips (a new list: items share their parents' lists).
local function plus(skips, m)
  local out = {}
  for i, s in ipairs(skips or {}) do out[i] = s end
  if m and m.n > 0 then out[#out + 1] = m end
  return out
end

-- Every row of `report` whose key (column ki) is v, as a multiset of whole rows.
local function rows_at(report, ki, v)
  local rows = { tuples = {}, n = 0 }
  for row in report:rows() do
    if key_value(row.data_cells[ki]) == v then
      local t = row_tuple(row)
      rows.tuples[t] = (rows.tuples[t] or 0) + 1
      rows.n = rows.n + 1
    end
  end
  return rows
end

R.key_value, R.filter_value = key_value, filter_value
R.take, R.taken, R.plus, R.rows_at = take, taken, plus, rows_at

return R
