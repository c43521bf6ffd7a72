-- spec/support/observe_probe.lua: for spec/observe_spec.lua, inside nginx: runs
-- spec/support/observe_scenario.lua on the cosocket engine (POST /scenario with
-- { opts, ids }) and answers with what the hook saw, as JSON. /hook_raises makes a client
-- whose hook raises on every exchange and answers with the calls' outcome and usage().
local probe_http = require "probe_http"
local sfreports = require "sfreports"
local scenario = require "observe_scenario"

local ngx = ngx -- luacheck: ignore 113 (nginx's global, this module runs only there)

local M = {}

local reply, query = probe_http.reply, probe_http.query

function M.scenario()
  local q = query()
  return reply(scenario.run(sfreports, q.opts, q.ids))
end

function M.hook_raises()
  local q = query()
  local o = {}
  for k, v in pairs(q.opts) do o[k] = v end
  local calls, seen = 0, {}
  -- the hook runs in this request's context: ngx.var is readable from it
  o.on_request = function(info)
    calls = calls + 1
    seen[#seen + 1] = { hook_error = info.hook_error, uri = ngx.var.request_uri }
    error("hook failed on purpose #" .. calls)
  end
  local c = assert(sfreports.new(o))
  local r1, e1 = c:run_sync(q.ids.sync)
  local reports = c:run_many({ q.ids.sync, q.ids.sync })
  local u = c:usage()
  return reply({ ok = r1 ~= nil, err = e1 and tostring(e1), many = reports[1] ~= nil and reports[2] ~= nil,
    calls = calls, seen = seen, hook_errors = u.hook_errors, last_hook_error = u.last_hook_error })
end

return M
