-- sfreports.secrets: the secrets one client holds (access tokens, refresh token, client
-- secret, password, JWT assertion, private key), and the one scrubber every error passes
-- through before it leaves the library.
--
-- A server may echo what it received: an Authorization header in an error body, a token
-- request's form in an error description. So a secret is looked for in every form it can
-- take on the way back: raw, percent-encoded (either hex case, whatever subset of
-- characters the encoder chose), form-encoded (space as '+'), JSON-escaped ('\/'), and
-- cut short at the end of a text that was capped. Each occurrence becomes "[secret]".
-- The bag keeps its strings in a private weak table, so that neither a dump of the
-- client nor tostring() of the bag shows them.
local type, pairs, setmetatable = type, pairs, setmetatable
local byte, sub, lower = string.byte, string.sub, string.lower
local concat = table.concat

local M = {}

M.MASK = "[secret]"
M.MIN_LENGTH = 4          -- shorter strings are not treated as secrets (they match everywhere)
M.MIN_TAIL = 8            -- a capped text ending in this much of a secret hides that part

local private = setmetatable({}, { __mode = "k" })

local Bag = {}
Bag.__index = Bag

function Bag:__tostring()
  return "sfreports.secrets(" .. #private[self] .. " held)"
end

-- A new, empty bag.
function M.new()
  local bag = setmetatable({}, Bag)
  private[bag] = {}
  return bag
end

-- Adds a secret (ignored when not a string or too short to be one). Returns the bag.
function Bag:add(s)
  if type(s) == "string" and #s >= M.MIN_LENGTH then
    local list = private[self]
    for i = 1, #list do
      if list[i] == s then return self end
    end
    list[#list + 1] = s
  end
  return self
end

local HEX = {}
for i = 0, 255 do HEX[lower(("%02x"):format(i))] = i end

-- Length of the text at s[i..] that spells byte b, or nil: b itself, "%hh" of it,
-- '+' for a space, "\/" for a slash.
local function spelled(s, i, b)
  local c = byte(s, i)
  if c == b then return 1 end
  if c == 37 then -- '%'
    local h = HEX[lower(sub(s, i + 1, i + 2))]
    if h == b then return 3 end
  elseif c == 43 and b == 32 then -- '+' for a space
    return 1
  elseif c == 92 and b == 47 and byte(s, i + 1) == 47 then -- "\/"
    return 2
  end
  return nil
end

-- End (exclusive) of an occurrence of secret at s[i..], or nil. At the end of s, a long
-- enough prefix of the secret counts: the text was cut there (and may end in the "..."
-- the error messages' cap adds, which a secret holding dots could otherwise extend).
local function match_at(s, i, secret)
  local n, len = #secret, #s
  local j = i
  for k = 1, n do
    if j > len or (j == len - 2 and k - 1 >= M.MIN_TAIL and sub(s, j) == "...") then
      if k - 1 >= M.MIN_TAIL then return j end
      return nil
    end
    local step = spelled(s, j, byte(secret, k))
    if not step then return nil end
    j = j + step
  end
  return j
end

local function scrub_one(s, secret)
  local out, i, last, len = nil, 1, 1, #s
  local first = byte(secret, 1)
  while i <= len do
    local stop = spelled(s, i, first) and match_at(s, i, secret)
    if stop then
      out = out or {}
      out[#out + 1] = sub(s, last, i - 1)
      out[#out + 1] = M.MASK
      i, last = stop, stop
    else
      i = i + 1
    end
  end
  if not out then return s end
  out[#out + 1] = sub(s, last)
  return concat(out)
end

-- Returns s with every secret of the bag masked (s unchanged when it is not a string).
function Bag:scrub(s)
  if type(s) ~= "string" then return s end
  local list = private[self]
  for i = 1, #list do s = scrub_one(s, list[i]) end
  return s
end

-- Masks the bag's secrets in every string field of an error (and of its `fields` table),
-- in place. Returns err.
function Bag:scrub_error(err)
  if type(err) ~= "table" then return err end
  for k, v in pairs(err) do
    if type(v) == "string" then
      err[k] = self:scrub(v)
    elseif type(v) == "table" and k ~= "cause" then
      for k2, v2 in pairs(v) do
        if type(v2) == "string" then v[k2] = self:scrub(v2) end
      end
    end
  end
  return err
end

-- For tests and diagnostics: how many secrets are held (never which).
function Bag:count()
  return #private[self]
end

M.Bag = Bag

return M
