-- sfreports.filters.values: the values a filter holds, and how each is written in the
-- API's value string (salesforce-analytics-api.md §7.2).
--
-- * Filter values are strings; several values are comma-separated in one string, and a
--   value that itself holds a comma is wrapped in double quotes so that Salesforce does
--   not split it. Every value the caller gives is one value, so "Acme, Inc." is sent as
--   "\"Acme, Inc.\""; several values are given as a Lua list and joined with commas.
--   raw("Closed Won,Closed Lost") sends the API's own comma syntax verbatim. How a literal
--   `"` inside a quoted value is escaped is UNCONFIRMED; it is doubled here, as in CSV.
-- * Lua dates: `os.time()` numbers and `{year=, month=, day=[, hour=, min=, sec=]}` tables
--   (local time, as for os.time). On a date column they become "YYYY-MM-DD" (local calendar
--   date); on a datetime column "YYYY-MM-DDTHH:MM:SSZ" (UTC) when a time is known. Without
--   describe (build) a plain number stays a number: wrap it in date()/datetime().
local args = require "sfreports.filters.args"
local json = require "sfreports.json"

local type, ipairs, tostring = type, ipairs, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
local concat = table.concat
local floor, huge = math.floor, math.huge
local format, sub, lower, find, gsub = string.format, string.sub, string.lower, string.find, string.gsub

local misuse, quote, list_length = args.misuse, args.quote, args.list_length
local NULL = json.null
args.own_file()

local values = {}

-- Column data types whose values are dates.
local DATE_TYPES = { date = true, datetime = true }
values.DATE_TYPES = DATE_TYPES

-- An ISO date at the start of a string.
local ISO_DATE = "^%d%d%d%d%-%d%d%-%d%d"
values.ISO_DATE = ISO_DATE

local DateMark = {}
DateMark.__index = DateMark
DateMark.__tostring = function(d) return "sfreports.filters." .. d.kind .. "(" .. tostring(d.value) .. ")" end

local RawMark = {}
RawMark.__index = RawMark
RawMark.__tostring = function(r) return "sfreports.filters.raw(" .. r.text .. ")" end

local function is_date_mark(v) return getmetatable(v) == DateMark end
values.is_date_mark = is_date_mark

local function is_raw(v) return getmetatable(v) == RawMark end

local function check_int(t, key, lo, hi, fname, optional)
  local v = t[key]
  if v == nil and optional then return end
  if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
    misuse(fname, "date table field " .. key .. " must be an integer from " .. lo .. " to " .. hi
      .. ", got " .. tostring(v))
  end
end

-- Raises unless t is a valid {year=, month=, day=[, hour=, min=, sec=]} table.
local function check_date_table(t, fname)
  check_int(t, "year", 1, 9999, fname)
  check_int(t, "month", 1, 12, fname)
  check_int(t, "day", 1, 31, fname)
  check_int(t, "hour", 0, 23, fname, true)
  check_int(t, "min", 0, 59, fname, true)
  check_int(t, "sec", 0, 61, fname, true)
end
values.check_date_table = check_date_table

local function is_date_table(v)
  return type(v) == "table" and getmetatable(v) == nil and v.year ~= nil
end
values.is_date_table = is_date_table

-- Raises on NaN and infinities (no value to send).
local function check_number(v, fname)
  if v ~= v or v == huge or v == -huge then
    misuse(fname, "cannot use " .. (v ~= v and "NaN" or "an infinite number") .. " as a filter value")
  end
end
values.check_number = check_number

-- Raises unless v is a value a filter can hold; lists hold scalars or dates only.
local function check_value(v, fname, in_list)
  local tv = type(v)
  if tv == "string" or tv == "boolean" then return end
  if tv == "number" then return check_number(v, fname) end
  if tv == "table" then
    if is_date_mark(v) then return end
    if is_raw(v) and not in_list then return end
    if is_date_table(v) then return check_date_table(v, fname) end
    if getmetatable(v) == nil and not in_list then
      local n = list_length(v, fname, "a list of values")
      if n == 0 then misuse(fname, "a list of values must not be empty") end
      for i = 1, n do check_value(v[i], fname, true) end
      return
    end
  end
  if v == nil then
    misuse(fname, "value is missing (use \"\" to match a blank field)")
  end
  local what = v == NULL and "JSON null" or (is_raw(v) and "raw() value" or tv)
  misuse(fname, "cannot use a " .. what .. (in_list and " inside a list of values" or " as a filter value"))
end
values.check_value = check_value

local number_string = json.number_text

-- A Lua date (number, table or mark) as "YYYY-MM-DD" or, with_time, "YYYY-MM-DDTHH:MM:SSZ".
-- Numbers are os.time values; tables are local calendar fields, as for os.time.
local function lua_date(v, with_time)
  if type(v) == "number" then
    local t = floor(v)
    if with_time then return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end
    return os.date("%Y-%m-%d", t)
  end
  if with_time and v.hour ~= nil then
    return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time(v))
  end
  return format("%04d-%02d-%02d", v.year, v.month, v.day)
end
values.lua_date = lua_date

local function looks_like_date_value(s)
  if s == "" then return true end
  if find(s, ISO_DATE .. "$") then return true end
  if find(s, ISO_DATE .. "T%d%d:%d%d") then return true end
  -- relative date literals: TODAY, THIS_MONTH, LAST_N_DAYS:30, ...
  return find(s, "^[A-Z][A-Z0-9_]*$") ~= nil or find(s, "^[A-Z][A-Z0-9_]*:%d+$") ~= nil
end

-- The value of a date mark for a column of type dtype (nil when unknown).
local function date_mark_text(v, dtype)
  local with_time = v.kind == "datetime"
  if dtype == "date" then with_time = false end
  if type(v.value) == "string" then
    return with_time and v.value or sub(v.value, 1, 10)
  end
  return lua_date(v.value, with_time)
end

-- A boolean as the column's own filter value name ("True"/"true"...), else True/False.
local function boolean_text(v, col)
  local want = v and "true" or "false"
  for _, fv in ipairs(col and col.filterValues or {}) do
    if type(fv) == "table" and type(fv.name) == "string" and lower(fv.name) == want then
      return fv.name
    end
  end
  return v and "True" or "False"
end

-- Formats one value for column `col` ({ dataType, filterValues }, or nil when unknown).
-- Returns the string, or nil and a sentence when the value cannot be sent for that column.
local function format_scalar(v, col)
  local dtype = col and col.dataType
  local tv = type(v)
  if tv == "string" then
    if DATE_TYPES[dtype] and not looks_like_date_value(v) then
      return nil, "is not an ISO date (YYYY-MM-DD) or a date literal such as THIS_MONTH"
    end
    return v
  elseif tv == "boolean" then
    return boolean_text(v, col)
  elseif tv == "number" then
    if DATE_TYPES[dtype] then return lua_date(v, dtype == "datetime") end
    return number_string(v)
  elseif is_date_mark(v) then
    return date_mark_text(v, dtype)
  else -- date table
    return lua_date(v, dtype ~= "date")
  end
end

-- One value of the API's comma-separated value string: wrapped in double quotes (inner
-- quotes doubled) when it holds a comma, so that Salesforce keeps it whole.
local function one_value(s)
  if find(s, ",", 1, true) then
    return '"' .. gsub(s, '"', '""') .. '"'
  end
  return s
end

-- Formats a checked filter value (a scalar, a date, a list of them, or a raw() value) for
-- column `col` (nil when unknown). Returns the API value string, or nil, a sentence and
-- the offending item.
function values.format(v, col)
  if is_raw(v) then return v.text end
  if type(v) == "table" and getmetatable(v) == nil and not is_date_table(v) then
    local parts = {}
    for i, item in ipairs(v) do
      local s, err = format_scalar(item, col)
      if not s then return nil, err, item end
      parts[i] = one_value(s)
    end
    return concat(parts, ",")
  end
  local s, err = format_scalar(v, col)
  if not s then return nil, err, v end
  return one_value(s)
end

-- Marks v (os.time number, date table or ISO string) as a date, so build() formats it as
-- "YYYY-MM-DD" even without describe.
function values.date(v)
  if type(v) == "string" then
    if not find(v, ISO_DATE) then misuse("date", "expected an ISO date string, got " .. quote(v)) end
  elseif type(v) == "number" then
    check_number(v, "date")
  elseif is_date_table(v) then
    check_date_table(v, "date")
  else
    misuse("date", "expected an os.time number, a {year=, month=, day=} table or an ISO string, got "
      .. type(v))
  end
  return setmetatable({ kind = "date", value = v }, DateMark)
end

-- Like date(), but keeps the time of day on datetime columns ("YYYY-MM-DDTHH:MM:SSZ", UTC).
function values.datetime(v)
  local d = values.date(v)
  d.kind = "datetime"
  return d
end

-- Marks a string as the API's own value syntax, sent verbatim: commas separate values and
-- double quotes keep a comma inside one ("Closed Won,Closed Lost", "\"Acme, Inc.\",Globex").
-- It is not checked against the column's type.
function values.raw(text)
  if type(text) ~= "string" then
    misuse("raw", "expected the API's value string, got " .. type(text))
  end
  return setmetatable({ text = text }, RawMark)
end

return values
