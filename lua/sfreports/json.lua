-- sfreports.json: JSON encoding for request bodies.
-- lua-cjson (Debian's 2.1.0) cannot tell an empty array from an empty object, and
-- Salesforce rejects `{}` where it expects `[]`, so bodies are encoded here with an
-- explicit array mark. Strings and numbers are still formatted by lua-cjson.
local cjson = require "cjson"

local tonumber, type, pairs, ipairs = tonumber, type, pairs, ipairs
local setmetatable, getmetatable = setmetatable, getmetatable
local concat, sort = table.concat, table.sort
local floor, format = math.floor, string.format
local cjson_encode = cjson.encode

local json = {}

-- JSON null, as lua-cjson decodes it (a light userdata).
json.null = cjson.null

local ARRAY = { __jsontype = "array" }
local OBJECT = { __jsontype = "object" }

-- Marks t as a JSON array (even when empty) and returns it.
function json.array(t)
  return setmetatable(t or {}, ARRAY)
end

-- Marks t as a JSON object (even when empty) and returns it.
function json.object(t)
  return setmetatable(t or {}, OBJECT)
end

local function is_sequence(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

-- The shortest decimal that reads back to the same (finite) double; integers without a
-- fraction. Shared by body encoding, filter values, paging keys and the writers' raw mode.
local function number_text(v)
  if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
    return format("%d", v)
  end
  for digits = 15, 16 do
    local s = format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
  return format("%.17g", v)
end
json.number_text = number_text

-- lua-cjson 2.1.0 rounds numbers to 14 significant digits; ids and amounts need all 17.
local function encode_number(v)
  if v ~= v or v == math.huge or v == -math.huge then
    error("json: cannot encode " .. tostring(v), 0)
  end
  return number_text(v)
end

local function encode_array(t, out)
  out[#out + 1] = "["
  for i, v in ipairs(t) do
    if i > 1 then out[#out + 1] = "," end
    encode_value(v, out)
  end
  out[#out + 1] = "]"
end

local function encode_object(t, out)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("json: object keys must be strings, got " .. type(k), 0)
    end
    keys[#keys + 1] = k
  end
  sort(keys) -- deterministic bodies make requests comparable in tests and logs
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = cjson_encode(k)
    out[#out + 1] = ":"
    encode_value(t[k], out)
  end
  out[#out + 1] = "}"
end

function encode_value(v, out)
  local tv = type(v)
  if tv == "table" then
    local mt = getmetatable(v)
    local kind = mt and mt.__jsontype
    if kind == "array" or (kind == nil and is_sequence(v)) then
      encode_array(v, out)
    else
      encode_object(v, out)
    end
  elseif v == cjson.null then
    out[#out + 1] = "null"
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "string" or tv == "boolean" then
    out[#out + 1] = cjson_encode(v)
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

-- Encodes v; an unmarked empty table becomes an object. Raises on values JSON cannot hold.
function json.encode(v)
  local out = {}
  encode_value(v, out)
  return concat(out)
end

return json
