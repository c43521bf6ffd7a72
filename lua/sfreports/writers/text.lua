-- sfreports.writers.text: how a value becomes text in the writers (numbers, currency,
-- booleans, nulls, labels) and the escaping of each output format (CSV, TSV, JSON).
-- Stated once here; the format modules (delimited, json_rows, aligned) only choose
-- among these when a header fixes the columns. Pure Lua.
local json = require "sfreports.json"

local null = json.null
local type, tostring, pcall = type, tostring, pcall
local find, gsub, format, byte, char = string.find, string.gsub, string.format, string.byte, string.char
local huge = math.huge
local json_encode = json.encode
local number_text = json.number_text

local text = {}

text.null = null

-- Shortest decimal that reads back to the same double; integers without a fraction.
local function fmt_number(v)
  if v ~= v then return "NaN" end
  if v == huge then return "Infinity" end
  if v == -huge then return "-Infinity" end
  return number_text(v)
end
text.format_number = fmt_number

-- Text of a non-null value in raw mode; the second result is true when it came from a number.
local function value_text(v)
  local tv = type(v)
  if tv == "string" then return v, false end
  if tv == "number" then return fmt_number(v), true end
  if tv == "boolean" then return v and "true" or "false", false end
  if v == nil or v == null then return "", false end
  if tv == "table" then
    local amount = v.amount
    if amount ~= nil then return value_text(amount) end
    -- json.encode refuses NaN and cycles: such an object is written as Lua prints it
    local ok, s = pcall(json_encode, v)
    if ok then return s, false end
  end
  return tostring(v), false
end
text.value_text = value_text

-- JSON null, or a currency object whose amount is null (typed as null by the report).
local function is_null(v)
  return v == null or (type(v) == "table" and v.amount == null)
end
text.is_null = is_null

-- Text of one cell or grouping ({ value, label }); second result as value_text. A cell
-- that is not a table (a bare number or string where Salesforce sends an object) is
-- written as its value, so that odd data never stops a writer.
local function field_text(c, raw)
  if c == nil then return "", false end
  if type(c) ~= "table" then return value_text(c) end
  local v = c.value
  if is_null(v) then return "", false end
  if not raw then
    local l = c.label
    local tl = type(l)
    if tl == "string" then return l, false end
    if tl == "number" then return tostring(l), false end
  end
  if v == nil then return "", false end
  return value_text(v)
end
text.field_text = field_text

---------------------------------------------------------------------------------------
-- spreadsheet formula guard

function text.guarded(s)
  local b = byte(s, 1)
  if b == 61 or b == 43 or b == 45 or b == 64 or b == 9 or b == 13 then return "'" .. s end
  return s
end

---------------------------------------------------------------------------------------
-- CSV (RFC 4180) and linear TSV

text.CSV_CHARS = { '"', ",", "\n", "\r" } -- '"' first: see delimited.escape_fields
local CSV_SPECIAL = '[,"\r\n]'
-- s needs quoting; has_quote: s contains '"'.
local function csv_quote(s, has_quote)
  if has_quote then s = gsub(s, '"', '""') end
  return '"' .. s .. '"'
end
text.csv_quote = csv_quote
function text.csv_escape(s)
  if find(s, CSV_SPECIAL) then return csv_quote(s, find(s, '"', 1, true)) end
  return s
end

-- CSV with another delimiter: its escape function and special characters.
function text.csv_escaper(delim)
  if delim == "," then return text.csv_escape, text.CSV_CHARS end
  local pattern = "[" .. gsub(delim, "%W", "%%%0") .. '"\r\n]'
  return function(s)
    if find(s, pattern) then return csv_quote(s, find(s, '"', 1, true)) end
    return s
  end, { '"', delim, "\n", "\r" }
end

text.TSV_CHARS = { "\t", "\n", "\r", "\\" }
local TSV_SPECIAL = "[\\\t\r\n]"
local TSV_MAP = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\r"] = "\\r", ["\n"] = "\\n" }
local function tsv_escape(s)
  if find(s, TSV_SPECIAL) then return (gsub(s, TSV_SPECIAL, TSV_MAP)) end
  return s
end
text.tsv_escape = tsv_escape

---------------------------------------------------------------------------------------
-- JSON

local JSON_SPECIAL = '[%c"\\]'
local JSON_MAP = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                   ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do
  local c = char(i)
  if not JSON_MAP[c] then JSON_MAP[c] = format("\\u%04x", i) end
end
JSON_MAP["\127"] = "\\u007f"
text.JSON_SPECIAL, text.JSON_MAP = JSON_SPECIAL, JSON_MAP

local function json_string(s)
  if find(s, JSON_SPECIAL) then s = gsub(s, JSON_SPECIAL, JSON_MAP) end
  return '"' .. s .. '"'
end
text.json_string = json_string

-- JSON text of a non-null raw value.
local function json_value(v)
  local tv = type(v)
  if tv == "string" then return json_string(v) end
  if tv == "number" then
    if v ~= v or v == huge or v == -huge then return "null" end
    return fmt_number(v)
  end
  if tv == "boolean" then return v and "true" or "false" end
  if v == nil or v == null then return "null" end
  if tv == "table" then
    local amount = v.amount
    if amount ~= nil then return json_value(amount) end
    local ok, s = pcall(json_encode, v)
    if ok then return s end
  end
  return json_string(tostring(v))
end
text.json_value = json_value

-- JSON text of one cell or grouping (a bare value where a cell was expected: its value).
function text.json_field(c, raw)
  if c == nil then return "null" end
  if type(c) ~= "table" then return json_value(c) end
  local v = c.value
  if is_null(v) then return "null" end
  if not raw then
    local l = c.label
    if type(l) == "string" then return json_string(l) end
  end
  if v == nil then return "null" end
  return json_value(v)
end

return text
