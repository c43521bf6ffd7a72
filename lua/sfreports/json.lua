-- sfreports.json: JSON encoding for request bodies.
-- lua-cjson (Debian's 2.1.0) cannot tell an empty array from an empty object, and
-- Salesforce rejects `{}` where it expects `[]`, so bodies are encoded here with an
-- explicit array mark. Strings and numbers are still formatted by lua-cjson.
local cjson = require "cjson"

local tonumber, type, pairs, ipairs = tonumber, type, pairs, ipairs
local setmetatable, getmetatable = setmetatable, getmetatable
local concat, sort = table.concat, table.sort
local floor, format, gsub = math.floor, string.format, string.gsub
local next = next
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

-- indent: nil for compact output, else the current indentation (pretty output).
local function encode_array(t, out, indent)
  if indent and #t == 0 then out[#out + 1] = "[]"; return end
  local inner = indent and indent .. "  "
  out[#out + 1] = indent and "[\n" or "["
  for i, v in ipairs(t) do
    if i > 1 then out[#out + 1] = indent and ",\n" or "," end
    if inner then out[#out + 1] = inner end
    encode_value(v, out, inner)
  end
  out[#out + 1] = indent and ("\n" .. indent .. "]") or "]"
end

-- lua-cjson escapes every "/" as "\/"; a person reading pretty output should not see that
-- (cjson never emits a bare "/", so each "\/" is that escape).
local function string_text(s, pretty)
  local text = cjson_encode(s)
  if pretty then text = gsub(text, "\\/", "/") end
  return text
end

local function encode_object(t, out, indent)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("json: object keys must be strings, got " .. type(k), 0)
    end
    keys[#keys + 1] = k
  end
  if indent and #keys == 0 then out[#out + 1] = "{}"; return end
  sort(keys) -- deterministic bodies make requests comparable in tests and logs
  local inner = indent and indent .. "  "
  out[#out + 1] = indent and "{\n" or "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = indent and ",\n" or "," end
    if inner then out[#out + 1] = inner end
    out[#out + 1] = string_text(k, indent)
    out[#out + 1] = indent and ": " or ":"
    encode_value(t[k], out, inner)
  end
  out[#out + 1] = indent and ("\n" .. indent .. "}") or "}"
end

function encode_value(v, out, indent)
  local tv = type(v)
  if tv == "table" then
    local mt = getmetatable(v)
    local kind = mt and mt.__jsontype
    if kind == "array" or (kind == nil and is_sequence(v)) then
      encode_array(v, out, indent)
    else
      encode_object(v, out, indent)
    end
  elseif v == cjson.null then
    out[#out + 1] = "null"
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "string" then
    out[#out + 1] = string_text(v, indent)
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

-- Encodes v; an unmarked empty table becomes an object. Raises on values JSON cannot hold.
-- opts.pretty: one member per line, two-space indentation, for people to read and edit.
function json.encode(v, opts)
  local out = {}
  encode_value(v, out, opts and opts.pretty and "" or nil)
  return concat(out)
end

-- Keys of report metadata and describe results whose value is a JSON array even when
-- empty: lua-cjson decodes [] and {} alike, and Salesforce refuses {} where it wants [].
json.ARRAY_KEYS = {
  reportFilters = true, detailColumns = true, groupingsDown = true, groupingsAcross = true,
  aggregates = true, historicalSnapshotDates = true, sortBy = true, buckets = true,
  crossFilters = true, standardFilters = true, categories = true, filterValues = true,
  values = true, reportTypes = true, dateGranularityInfos = true,
  standardDateFilterDurationGroups = true, standardDateFilterDurations = true,
}

-- Marks, in place, every empty table held under one of ARRAY_KEYS as an array, so that a
-- decoded result encodes back as Salesforce sent it. Returns v.
function json.mark_arrays(v, key)
  if type(v) ~= "table" or getmetatable(v) then return v end
  if next(v) == nil and json.ARRAY_KEYS[key] then return json.array(v) end
  for k, item in pairs(v) do v[k] = json.mark_arrays(item, k) end
  return v
end

return json
