-- spec/support/probe_http.lua: what the specs' nginx handlers (spec/support/*_probe.lua,
-- inside nginx) share: reading the JSON query a spec POSTs and answering with JSON.
local cjson = require "cjson.safe"

local ngx = ngx -- luacheck: ignore 113 (nginx's global, this module runs only there)

local M = {}

-- Answers value as JSON (status 200) and ends the request.
function M.reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
  return ngx.exit(200)
end

-- The request body, decoded; raises when it is not JSON.
function M.query()
  ngx.req.read_body()
  return assert(cjson.decode(ngx.req.get_body_data()))
end

-- The message of an error, without the position prefix Lua adds.
function M.bare(msg)
  return (tostring(msg):gsub("^.-:%d+: ", ""))
end

-- The number of detail rows of a tabular result (factMap["T!T"].rows), or nil.
function M.rows_of(value)
  local fm = type(value) == "table" and value.factMap
  local tt = type(fm) == "table" and fm["T!T"]
  return type(tt) == "table" and type(tt.rows) == "table" and #tt.rows or nil
end

return M
