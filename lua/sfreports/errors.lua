-- sfreports.errors: the structured error values every runtime failure returns.
-- The metatable (with __tostring) belongs to the C core, so errors made in C and in Lua
-- are the same kind of value. Fields: kind, message, status?, code?, retryable, plus
-- optional context (retry_after, instance_id, report_id, fields, excerpt).
local core = require "sfreports.core"

local type, getmetatable, pairs = type, getmetatable, pairs
local new_error = core.new_error

local errors = {}

errors.metatable = core.error_mt

errors.KINDS = {
  network = true, timeout = true, http = true, api = true,
  decode = true, auth = true, limit = true, invalid = true,
  io = true, -- a local write failed: the sink of a streamed answer (client:export)
}

-- Returns a new error of `kind` (raises on an unknown kind: that is a bug, not a failure).
function errors.new(kind, message, fields)
  if not errors.KINDS[kind] then
    error("sfreports.errors.new: unknown error kind " .. tostring(kind), 2)
  end
  local e = { kind = kind, message = message }
  if fields then
    for k, v in pairs(fields) do
      if e[k] == nil then e[k] = v end
    end
  end
  return new_error(e)
end

-- Shorthand for the error every bad input gets before any request is sent.
function errors.invalid(message, fields)
  return errors.new("invalid", message, fields)
end

function errors.is(v)
  return type(v) == "table" and getmetatable(v) == errors.metatable
end

return errors
