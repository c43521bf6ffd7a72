-- sfreports.filters.args: argument checks shared by the filter modules (filters, logic,
-- describe, run_options): misuse errors positioned at the caller's code, list and key
-- checks, and the wording helpers their messages use.
--
-- Misuse (a wrong argument) raises "sfreports.filters.<function>: <what>", whichever of
-- the modules the check sits in: the public names are those of sfreports.filters.
local type, pairs, tostring, error = type, pairs, tostring, error
local floor = math.floor
local concat = table.concat
local getinfo = debug.getinfo

local args = {}

-- The source names of the modules whose frames a misuse error skips.
local own_sources = {}

-- Registers the calling module's file: misuse errors point past its frames.
function args.own_file()
  own_sources[getinfo(2, "S").source] = true
end
own_sources[getinfo(1, "S").source] = true

-- Raises a string error for programmer misuse, positioned at the caller's code (the first
-- stack frame outside the filter modules).
function args.misuse(fname, msg)
  local level = 2
  while true do
    local info = getinfo(level, "S")
    if not info then
      level = 1
      break
    end
    -- (Lua 5.1 shows a tail call as a frame of its own: skip it too)
    if not own_sources[info.source] and info.what ~= "tail" then break end
    level = level + 1
  end
  error("sfreports.filters." .. fname .. ": " .. msg, level)
end
local misuse = args.misuse

-- 'name': how messages show a name or value.
function args.quote(s)
  return "'" .. tostring(s) .. "'"
end
local quote = args.quote

-- "a", "a or b", "a, b or c"
function args.or_list(items)
  if #items <= 1 then return items[1] or "" end
  return concat(items, ", ", 1, #items - 1) .. " or " .. items[#items]
end

-- Walks a list, raising when it has holes or non-integer keys; returns its length.
function args.list_length(t, fname, what)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k ~= floor(k) then
      misuse(fname, what .. " must be a list (found key " .. tostring(k) .. ")")
    end
    if k > n then n = k end
  end
  for i = 1, n do
    if t[i] == nil then misuse(fname, what .. " has a hole at index " .. i) end
  end
  return n
end

-- Raises when t has a key outside `allowed` (catches typos in option tables).
function args.check_keys(t, allowed, fname, what)
  for k in pairs(t) do
    if not allowed[k] then
      misuse(fname, what .. " has an unknown key " .. quote(k))
    end
  end
end

-- The errors module needs the C core; load it only when an error is built.
function args.invalid(msg, fields)
  return require("sfreports.errors").new("invalid", msg, fields)
end

-- A `decode` error: something the server sent (a describe answer) has the wrong shape.
function args.decode(msg, fields)
  return require("sfreports.errors").new("decode", msg, fields)
end

return args
