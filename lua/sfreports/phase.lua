-- sfreports.phase: where in nginx we are, stated once. Inside OpenResty a blocking call
-- would stall every request of the worker, so requests go over cosockets and waits use
-- ngx.sleep, which both exist only in some phases. Outside nginx this says "curl".
local type, rawget = type, rawget

local M = {}

-- Phases in which nginx offers cosockets and ngx.sleep may yield.
M.COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

-- nginx's `ngx` table when this code runs inside nginx with its Lua module, else nil.
function M.ngx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

-- The current nginx phase, or nil outside nginx.
function M.current()
  local ngx = M.ngx()
  return ngx and ngx.get_phase() or nil
end

-- True where ngx.sleep yields instead of blocking (cosocket phases).
function M.can_yield()
  local phase = M.current()
  return phase ~= nil and M.COSOCKET_PHASES[phase] == true
end

-- Returns "ngx" inside nginx in a phase that has cosockets, and in init_by_lua (a client
-- made there is typically kept and used later by handlers, so it must be the cosocket
-- one; its calls during init itself go through a short-lived blocking libcurl session,
-- harmless before nginx serves). "curl" outside nginx. nil and the phase name in other
-- nginx phases (set, header_filter, body_filter, log, init_worker...).
function M.engine()
  local phase = M.current()
  if phase == nil then return "curl" end
  if M.COSOCKET_PHASES[phase] or phase == "init" then return "ngx" end
  return nil, phase
end

-- The message every request gets in a phase without cosockets.
function M.unusable_message(phase)
  return "sfreports cannot send requests in the nginx '" .. tostring(phase)
    .. "' phase: cosockets are not available there; use ngx.timer.at(0, ...) or a content/access phase"
end

return M
