-- sfreports.report.keys: fact-map keys ("B0#0_1!2") and the index paths in them, and
-- the orders the model lists them in. Pure functions over strings and arrays.
local type, tonumber, pairs = type, tonumber, pairs
local find, match, gsub = string.find, string.match, string.gsub
local min = math.min

local keys = {}

-- "B0#0_1!2" -> prefix "B0#", down "0_1", across "2". Plain keys give prefix "".
function keys.parse_key(k)
  if type(k) ~= "string" then return nil end
  local left, across = match(k, "^(.*)!([^!]*)$")
  if not left then return nil end
  local prefix, down = match(left, "^(.*[^%w_])([%w_]*)$")
  if not prefix then prefix, down = "", left end
  return prefix, down, across
end

-- Whether any key of fact map fm carries a block prefix (joined reports, or any result so
-- keyed): what decides whether sfreports.report.blocks is needed at all.
function keys.prefixed(fm)
  for k in pairs(fm) do
    if type(k) == "string" and not find(k, "^[%dT_]*![%dT_]*$") then
      local prefix = keys.parse_key(k)
      if prefix and prefix ~= "" then return true end
    end
  end
  return false
end

-- "0_1" -> {0, 1}; "T" -> {} ; anything else -> nil
function keys.parse_path(s)
  if s == "T" then return {} end
  if not find(s, "^%d+[_%d]*$") or find(s, "__") or find(s, "_$") then return nil end
  local out = {}
  for d in s:gmatch("%d+") do out[#out + 1] = tonumber(d) end
  return out
end

-- Pre-order comparison of index paths: parents before children, "T" ({}) last, and
-- unparsable paths (nil) after everything.
function keys.path_less(a, b)
  if a == nil then return false end
  if b == nil then return true end
  if #a == 0 then return false end
  if #b == 0 then return true end
  for i = 1, min(#a, #b) do
    if a[i] ~= b[i] then return a[i] < b[i] end
  end
  return #a < #b
end

-- Whether path a is b or one of b's ancestors.
function keys.is_prefix(a, b)
  if a == nil or b == nil or #a > #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

-- "B2" < "B10": compare by embedded numbers where they line up.
function keys.natural_less(a, b)
  local na, nb = tonumber(match(a, "(%d+)")), tonumber(match(b, "(%d+)"))
  local sa, sb = gsub(a, "%d+", ""), gsub(b, "%d+", "")
  if sa == sb and na and nb and na ~= nb then return na < nb end
  return a < b
end

-- The block id of a key prefix: "B0#" -> "B0".
function keys.block_id(prefix)
  return match(prefix, "^(.-)[^%w_]$") or prefix
end

return keys
