-- sfreports.ids: Salesforce record-id checks (15/18 characters, case checksum).
-- Pure Lua so that the fake org and the client share one implementation.
local byte, sub, upper, find = string.byte, string.sub, string.upper, string.find

local ids = {}

local SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
local BIT = { 1, 2, 4, 8, 16 }

-- The 3-character suffix encodes, per 5-character chunk, which letters are upper case.
function ids.checksum(id15)
  local out = {}
  for chunk = 0, 2 do
    local bits = 0
    for i = 0, 4 do
      local c = byte(id15, chunk * 5 + i + 1)
      if c >= 65 and c <= 90 then bits = bits + BIT[i + 1] end
    end
    local k = bits + 1
    out[#out + 1] = sub(SUFFIX_ALPHABET, k, k)
  end
  return table.concat(out)
end

function ids.to18(id)
  if #id == 18 then return id end
  return id .. ids.checksum(id)
end

-- Returns true, or nil and a sentence saying what is wrong with the id.
function ids.check(id, what)
  what = what or "id"
  if type(id) ~= "string" then
    return nil, what .. " must be a string, got " .. type(id)
  end
  if #id ~= 15 and #id ~= 18 then
    return nil, ("%s %q must be 15 or 18 characters long, not %d"):format(what, id, #id)
  end
  if find(id, "[^%w]") then
    return nil, ("%s %q may contain only letters and digits"):format(what, id)
  end
  if #id == 18 then
    local want = ids.checksum(sub(id, 1, 15))
    if upper(sub(id, 16)) ~= want then
      return nil, ("%s %q has a wrong case-checksum suffix (expected %s): check that its letter case is intact")
        :format(what, id, want)
    end
  end
  return true
end

-- Like check, and the id must start with `prefix` (its key prefix: "01Z" for a dashboard,
-- "005" for a user). Returns true, or nil and a sentence.
function ids.check_prefixed(id, prefix, what)
  local ok, why = ids.check(id, what)
  if not ok then return nil, why end
  if sub(id, 1, #prefix) ~= prefix then
    return nil, ("%s %q must start with %s"):format(what or "id", id, prefix)
  end
  return true
end

return ids
