-- spec/support/fixtures.lua: the recorded answers in spec/fixtures/ (found next to this
-- file, whatever the working directory).
--   local fixtures = require "fixtures"
--   local decoded, body = fixtures.load("result_tabular_details.cghall.json")
--   local copy = fixtures.deepcopy(decoded)     -- to change without touching the original
local cjson = require "cjson"

local fixtures = {}

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
fixtures.dir = here .. "/../fixtures/"

-- The fixture `name` decoded with cjson, and its text; raises when it cannot be read.
function fixtures.load(name)
  local f = assert(io.open(fixtures.dir .. name, "rb"))
  local body = f:read("*a")
  f:close()
  return cjson.decode(body), body
end

-- A deep copy of v (metatables kept, as json.null and json.array() carry them).
function fixtures.deepcopy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = fixtures.deepcopy(x) end
  return setmetatable(c, getmetatable(v))
end

return fixtures
