-- sfreports.transport: chooses how requests travel.
--   "curl": the C core's libcurl engine (blocking calls plus a non-blocking multi engine).
--   "ngx":  nginx cosockets, inside OpenResty request phases, where a blocking call
--           would stall every request of the worker (sfreports.transport_ngx).
-- Both expose: request(method, path, body, headers) -> value, meta | nil, err;
-- start(...) -> handle; perform(wait) -> finished handles; set_token; stats; close.
local core = require "sfreports.core"

local M = {}

-- Phases in which nginx offers cosockets.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

-- Returns "ngx" inside nginx in a phase that has cosockets, and in init_by_lua (a client
-- made there is typically kept and used later by handlers, so it must be the cosocket
-- one; its calls during init itself go through a short-lived blocking libcurl session,
-- harmless before nginx serves). "curl" outside nginx. nil and the phase name in other
-- nginx phases (set, header_filter, body_filter, log, init_worker...).
function M.detect()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then
    return "curl"
  end
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return "ngx" end
  if phase == "init" then return "ngx" end
  return nil, phase
end

function M.new(opts, kind)
  if kind == nil then
    local phase
    kind, phase = M.detect()
    if not kind then
      local errors = require "sfreports.errors"
      return nil, errors.invalid("sfreports cannot send requests in the nginx '" .. phase
        .. "' phase: cosockets are not available there; use ngx.timer.at(0, ...) or a content/access phase")
    end
  end
  if kind == "ngx" then
    return require("sfreports.transport_ngx").new(opts)
  elseif kind == "curl" then
    return core.session(opts)
  end
  error("sfreports: unknown transport '" .. tostring(kind) .. "' (curl or ngx)", 2)
end

return M
