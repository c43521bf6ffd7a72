-- sfreports.report.cells: typed values and display labels of cells, groups and
-- aggregates (the "Cells" rules documented in sfreports.report).
local base = require "sfreports.report.base"
local ids = require "sfreports.ids"
local json = require "sfreports.json"

local null = base.null
local type, tonumber = type, tonumber
local find, match = string.find, string.match
local huge = math.huge
local number_text = json.number_text
-- Lua 5.3+ only: 5.1 and LuaJIT have one number type, so counts are already exact there.
local tointeger = math.tointeger

local cells = {}

local NUMERIC = { int = true, double = true, percent = true, number = true, currency = true }

-- An integral number as an integer (5.3+), so that a count prints "4", not "4.0"; a
-- number with a fraction or beyond the integer range stays as it is.
local function as_integer(n)
  if tointeger then return tointeger(n) or n end
  return n
end

-- Returns the typed value, and for currency objects the currency code (string or null).
function cells.typed(v, data_type)
  if v == nil or v == null then return null end
  local tv = type(v)
  if tv == "number" then
    if data_type == "int" then return as_integer(v) end
  elseif tv == "table" then
    local amount = v.amount
    if amount ~= nil then
      if type(amount) == "string" then amount = tonumber(amount) or amount end
      local cur = v.currency
      if cur == nil then cur = null end
      return amount, cur
    end
  elseif tv == "string" then
    if NUMERIC[data_type] then
      if find(v, "^[-+]?%.?%d") then
        local n = tonumber(v)
        if n then
          if data_type == "int" then return as_integer(n) end
          return n
        end
      end
    elseif data_type == "boolean" then
      if v == "true" then return true elseif v == "false" then return false end
    end
  end
  return v
end

-- The type an aggregate's values are read with: its column's dataType; a record count
-- (RowCount) or a unique count (u!FIELD, B0#u!FIELD) without one counts, so "int".
function cells.aggregate_type(col)
  if not col then return nil end
  if col.data_type then return col.data_type end
  local name = col.name
  if name and (match(name, "RowCount$") or find(name, "^u!") or find(name, "[^%w_]u!")) then return "int" end
  return nil
end

-- Display text of a label: strings as sent, JSON null as null; a number (never sent by
-- Salesforce, but still a valid cell) as text written as the writers write numbers ("42",
-- not "42.0"); anything else (a boolean, an object, an array) is no label, null, so the
-- display falls back to the value, as the writers do.
function cells.label_text(l)
  local tl = type(l)
  if tl == "string" then return l end
  if tl == "number" then
    if l ~= l then return "NaN" end
    if l == huge then return "Infinity" end
    if l == -huge then return "-Infinity" end
    return number_text(l)
  end
  return null
end
local label_text = cells.label_text

-- A record id shown under a different label (name / lookup columns).
local function record_id(v, label, data_type)
  if type(v) ~= "string" or v == label or type(label) ~= "string" then return nil end
  local n = #v
  if n == 18 then
    if ids.check(v) then return v end
  elseif n == 15 and (data_type == "reference" or data_type == "id") and not find(v, "[^%w]") then
    return v
  end
  return nil
end

-- Fills the typed fields of a cell, group or aggregate object `obj` from the raw
-- { value, label } table `raw`, read as data type `dt`.
function cells.fill(obj, raw, dt)
  local rv, label
  if type(raw) == "table" then rv, label = raw.value, raw.label end
  local value, currency = cells.typed(rv, dt)
  if label == nil then label = null else label = label_text(label) end
  obj.value, obj.label = value, label
  if currency ~= nil then obj.currency = currency end
  local rid = record_id(value, label, dt)
  if rid then obj.id = rid end
  return obj
end

-- A cell object from its raw {value, label} table; `dt` overrides the column's type.
function cells.make(raw, column, dt)
  return cells.fill({ column = column, raw = raw }, raw, dt or (column and column.data_type))
end

return cells
