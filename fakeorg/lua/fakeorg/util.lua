-- fakeorg.util: small helpers shared by the fake org modules: JSON with explicit empty
-- arrays, a portable LCG, calendar arithmetic and Salesforce-style label formatting.
-- Pure Lua (no ngx), runs on LuaJIT and Lua 5.1-5.4 with identical results.
local cjson = require "cjson.safe"

local floor, format, concat = math.floor, string.format, table.concat
local gsub, sub, reverse = string.gsub, string.sub, string.reverse

local util = {}

util.null = cjson.null

-- lua-cjson 2.1.0 encodes an empty table as `{}`; arrays that may be empty are replaced by
-- this marker, and the marker's JSON string is rewritten to `[]` after encoding.
local EMPTY = "@@fakeorg_empty_array@@"
local EMPTY_JSON = '"' .. EMPTY .. '"'

function util.arr(t)
  if t == nil or next(t) == nil then return EMPTY end
  return t
end

function util.encode(value)
  local s = assert(cjson.encode(value))
  if s:find(EMPTY, 1, true) then
    s = gsub(s, EMPTY_JSON, "[]")
  end
  -- lua-cjson escapes "/" as "\/"; Salesforce does not.
  if s:find("\\/", 1, true) then
    s = gsub(s, "\\/", "/")
  end
  return s
end

function util.decode(s)
  return cjson.decode(s)
end

-- Park-Miller "minimal standard" LCG: every product stays below 2^53, so doubles
-- (LuaJIT, Lua 5.1) and integers (Lua 5.3+) produce the same sequence.
local MOD, MUL = 2147483647, 48271

local Rng = {}
Rng.__index = Rng

function util.rng(seed, index)
  local state = (seed * 7919 + (index or 0) * 104729) % (MOD - 1) + 1
  local r = setmetatable({ state = state }, Rng)
  for _ = 1, 4 do r:next() end
  return r
end

function Rng:next()
  self.state = (self.state * MUL) % MOD
  return self.state
end

-- Integer in [lo, hi].
function Rng:int(lo, hi)
  return lo + self:next() % (hi - lo + 1)
end

-- True with the given percent probability.
function Rng:chance(percent)
  return self:next() % 100 < percent
end

function Rng:pick(list)
  return list[self:int(1, #list)]
end

-- Base-62 digits, zero padded to width (used to build record ids).
local B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

function util.base62(n, width)
  local out = {}
  repeat
    local d = n % 62
    out[#out + 1] = sub(B62, d + 1, d + 1)
    n = floor(n / 62)
  until n == 0
  while #out < width do out[#out + 1] = "0" end
  return reverse(concat(out))
end

-- Days since 1970-01-01 <-> civil date (proleptic Gregorian, H. Hinnant's algorithm).
function util.days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

function util.civil(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

function util.iso(z)
  local y, m, d = util.civil(z)
  return format("%04d-%02d-%02d", y, m, d)
end

-- "YYYY-MM-DD..." -> days, or nil.
function util.parse_iso(s)
  if type(s) ~= "string" then return nil end
  local y, m, d = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)")
  if not y then return nil end
  return util.days(tonumber(y), tonumber(m), tonumber(d))
end

-- 0 = Sunday.
function util.weekday(z)
  return (z + 4) % 7
end

function util.today()
  return floor(os.time() / 86400)
end

local MONTHS = { "January", "February", "March", "April", "May", "June", "July",
  "August", "September", "October", "November", "December" }
util.MONTHS = MONTHS

-- en-US date label: M/D/YYYY.
function util.date_label(iso)
  local y, m, d = iso:match("^(%d+)-(%d+)-(%d+)")
  return format("%d/%d/%d", tonumber(m), tonumber(d), tonumber(y))
end

function util.round2(x)
  return floor(x * 100 + 0.5) / 100
end

local function group_thousands(digits)
  local out = digits
  local n
  repeat
    out, n = gsub(out, "^(%d+)(%d%d%d)", "%1,%2")
  until n == 0
  return out
end

-- 1234.5 -> "$1,234.50"
function util.money(x)
  local sign = x < 0 and "-" or ""
  local s = format("%.2f", math.abs(x))
  local int, frac = s:match("^(%d+)%.(%d+)$")
  return sign .. "$" .. group_thousands(int) .. "." .. frac
end

-- Integers print without a decimal point, in every Lua version.
function util.int_label(x)
  local sign = x < 0 and "-" or ""
  return sign .. group_thousands(format("%d", math.abs(x)))
end

function util.number_label(x, decimals)
  if decimals == 0 or x == floor(x) and decimals == nil then
    return util.int_label(x)
  end
  local s = format("%." .. (decimals or 2) .. "f", x)
  local sign, int, frac = s:match("^(-?)(%d+)%.(%d+)$")
  return sign .. group_thousands(int) .. "." .. frac
end

function util.shallow_copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

return util
