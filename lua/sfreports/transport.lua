-- sfreports.transport: chooses the engine requests travel by.
--   "curl": the C core's libcurl engine (blocking calls plus a non-blocking multi engine).
--   "ngx":  nginx cosockets, inside OpenResty request phases, where a blocking call
--           would stall every request of the worker (sfreports.transport_ngx).
-- Both offer the same interface: request/start (method, path, body?, headers?, ropts?),
-- run_sync/run_async/fetch_instance, perform(wait) -> finished handles, pending,
-- set_token, stats, close (see docs/DESIGN.md).
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local phase = require "sfreports.phase"

local type, pairs, error, tostring = type, pairs, error, tostring

local M = {}

-- libcurl reads proxies from the environment (http_proxy...). Over plain http (allowed
-- only for a loopback instance) the Authorization header would reach that proxy in
-- cleartext, so such a session never uses one: an explicit proxy is refused, and the
-- environment's is switched off ("" tells libcurl: no proxy).
local function curl_options(opts)
  if type(opts.base_url) ~= "string" or not opts.base_url:match("^[Hh][Tt][Tt][Pp]://") then return opts end
  if opts.proxy ~= nil and opts.proxy ~= "" then
    return nil, errors.invalid("a proxy cannot be used with a plain http URL: the access token would "
      .. "cross it in cleartext (use https, or no proxy)", { option = "proxy" })
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.proxy = ""
  return o
end

-- Makes a transport of `kind` ("curl" or "ngx"; default: what the nginx phase allows).
-- Returns transport, kind; or nil and an `invalid` error in an nginx phase without
-- cosockets. Raises on an unknown kind.
function M.new(opts, kind)
  if kind == nil then
    local where
    kind, where = phase.engine()
    if not kind then
      return nil, errors.invalid(phase.unusable_message(where), { phase = where })
    end
  end
  if kind == "ngx" then
    local t, err = require("sfreports.transport_ngx").new(opts)
    if not t then return nil, err end
    return t, kind
  elseif kind == "curl" then
    local o, err = curl_options(opts)
    if not o then return nil, err end
    return core.session(o), kind
  end
  error("sfreports: unknown transport '" .. tostring(kind) .. "' (curl or ngx)", 2)
end

-- Kept for callers of the first release: "ngx", "curl", or nil and the phase name.
M.detect = phase.engine

return M
