-- sfreports.report.base: the small helpers every part of the report model shares
-- (JSON null, a read-only empty table, type filters). See sfreports.report.
local json = require "sfreports.json"

local type, setmetatable, error = type, setmetatable, error

local base = {}

base.null = json.null

-- Shared stand-in for a missing list or map: one table, so it must never be written.
base.EMPTY = setmetatable({}, { __newindex = function() error("sfreports.report: read-only table", 2) end })

-- v when it is a table, else nil.
function base.tbl(v)
  if type(v) == "table" then return v end
  return nil
end

-- v when it is a string, else nil.
function base.str(v)
  if type(v) == "string" then return v end
  return nil
end

return base
