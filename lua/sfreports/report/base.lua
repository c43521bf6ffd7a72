-- sfreports.report.base: the small helpers every part of the report model shares
-- (JSON null, a read-only empty table, type filters). See sfreports.report.
local json = require "sfreports.json"

local type, setmetatable, error, next = type, setmetatable, error, next

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

-- Tables decoded from JSON arrays have the keys 1..n, objects string keys; an empty
-- table is both. (t[1] first: these run for every row and cell.)
function base.is_array(t)
  return t[1] ~= nil or next(t) == nil
end

function base.is_object(t)
  return t[1] == nil
end

return base
