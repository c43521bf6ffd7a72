-- sfreports.transport_ngx: the HTTP transport for OpenResty / nginx's Lua module.
-- A blocking libcurl call inside a handler would stall every request of the nginx
-- worker, so here requests travel over cosockets (ngx.socket.tcp): HTTP/1.1 with
-- keep-alive pools (setkeepalive), TLS through sslhandshake with verification,
-- Content-Length, chunked and gzip bodies, read by sfreports.ngx_http within bounds and
-- one total deadline. Classification and JSON decoding stay in the C core
-- (core.classify, core.inflater), so results and errors are the same values
-- as with the libcurl session, whose interface this object mirrors:
--   request(method, path, body?, headers?) -> value, meta | nil, err
--   start(...) -> handle; perform(wait) -> finished handles; handle:result()
--   pending(); set_token(t); stats(); close()
-- Certificates: cosockets verify against nginx's `lua_ssl_trusted_certificate`; the
-- cafile/capath options of the libcurl session do not apply here.
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local http = require "sfreports.ngx_http"

local type, tostring, tonumber, setmetatable, getmetatable, pairs, pcall, error, next =
  type, tostring, tonumber, setmetatable, getmetatable, pairs, pcall, error, next
local format, lower, match, find, sub, byte =
  string.format, string.lower, string.match, string.find, string.sub, string.byte
local concat = table.concat
local min = math.min
local classify, monotime = core.classify, core.monotime

local M = {}

-- The connection and response limits (pool sizes, line and header block bounds) are
-- those of sfreports.ngx_http.
M.http = http

-- Phases where cosockets work; "init" is served by a short-lived libcurl session
-- (blocking is harmless before nginx serves anything).
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
M.COSOCKET_PHASES = COSOCKET_PHASES

local METHODS = { GET = true, POST = true, DELETE = true, PATCH = true, PUT = true, HEAD = true }
local BODY_METHODS = { POST = true, PATCH = true, PUT = true }

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then
    error("sfreports.transport_ngx: only usable inside nginx with the Lua module (ngx is missing)", 3)
  end
  return ngx
end

-- The error every request gets in a phase without cosockets (set, log, filters...).
function M.phase_error(phase)
  return errors.invalid("sfreports cannot send requests in the nginx '" .. tostring(phase)
    .. "' phase: cosockets are not available there; use ngx.timer.at(0, ...) or a content/access phase",
    { phase = phase })
end

---------------------------------------------------------------------------
-- URLs

-- "https://host:port/path?q" -> scheme, host (no brackets), port, authority, target
local function split_url(url)
  local scheme, authority, target = match(url, "^(https?)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  local host, port = match(authority, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = match(authority, "^([^:]+):?(%d*)$") end
  if not host or find(authority, "@", 1, true) then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if target == "" then target = "/" end
  target = match(target, "^[^#]*")
  return scheme, host, port, authority, target
end

---------------------------------------------------------------------------
-- the transport object

local Transport = {}
Transport.__index = Transport
Transport.__name = "sfreports.transport_ngx"

local Handle = {}
Handle.__index = Handle

local function num_opt(opts, name, dflt)
  local v = opts[name]
  if v == nil then return dflt end
  if type(v) ~= "number" then error("sfreports: option '" .. name .. "' must be a number", 3) end
  if v < 0 then error("sfreports: option '" .. name .. "' must not be negative", 3) end
  return v
end

local function str_opt(opts, name, dflt)
  local v = opts[name]
  if v == nil then return dflt end
  if type(v) ~= "string" then error("sfreports: option '" .. name .. "' must be a string", 3) end
  return v
end

-- Header values end up in the request head: a control character (CR, LF, NUL...) would
-- let a caller (or a value from elsewhere) add headers or split the request, so it is
-- refused as misuse, with the C session's message (which never shows the value).
local function check_header_text(s, what)
  if find(s, "[%z\1-\31\127]") then
    error("sfreports: " .. what .. " must not contain control characters (CR, LF, NUL)", 4)
  end
  return s
end

-- Why a relative request path is unsafe, or nil (the C session's rules): ids and names
-- from users or responses must not move the request off the resource it names, so no
-- dot segments, no encoded or backslash separators in the path part, no fragment, space
-- or control character.
local function path_problem(p)
  local path_part = match(p, "^[^?]*")
  if find(path_part, "\\", 1, true) then return "a backslash" end
  local lp = lower(path_part)
  if find(lp, "%2e", 1, true) or find(lp, "%2f", 1, true) or find(lp, "%5c", 1, true) then
    return "an encoded dot, slash or backslash"
  end
  if find(path_part .. "/", "/%.%.?/") then return "a '.' or '..' segment" end
  if find(p, "[%z\1-\32\127]") then return "a space or control character" end
  if find(p, "#", 1, true) then return "a '#'" end
  return nil
end
M.path_problem = path_problem

local function bearer(token)
  if token == nil then return nil end
  if type(token) ~= "string" then error("sfreports: option 'token' must be a string", 3) end
  return "Bearer " .. check_header_text(token, "token")
end

-- M.new(opts): the options of core.session (base_url, token, api_version, timeout,
-- connect_timeout, stall_timeout, max_response, verify, user_agent, cafile, capath).
-- Returns the transport, or nil and an `invalid` error for what cosockets cannot do.
function M.new(opts)
  if type(opts) ~= "table" then error("sfreports: transport options must be a table", 2) end
  local base = str_opt(opts, "base_url")
  if base == nil then error("sfreports: option 'base_url' is required", 2) end
  base = (base:gsub("/+$", ""))
  local scheme = split_url(base)
  if not scheme then
    return nil, errors.invalid(format("base_url %q is not an http(s) URL", base))
  end
  if opts.proxy ~= nil then
    return nil, errors.invalid("the nginx cosocket transport does not support a proxy; "
      .. "use the libcurl transport outside nginx")
  end
  local self = setmetatable({
    base_url = base,
    api_version = str_opt(opts, "api_version", "66.0"),
    user_agent = check_header_text(str_opt(opts, "user_agent", "sfreports/" .. core.VERSION), "user_agent"),
    timeout = num_opt(opts, "timeout", 150),
    connect_timeout = num_opt(opts, "connect_timeout", 10),
    stall_timeout = num_opt(opts, "stall_timeout", 130),
    max_response = num_opt(opts, "max_response", 256 * 1024 * 1024),
    verify = opts.verify == nil and true or not not opts.verify,
    cafile = str_opt(opts, "cafile"), capath = str_opt(opts, "capath"),
    _auth = bearer(opts.token),
    _opts = opts,
    _requests = 0, _connects = 0,
    _pending = 0, _finished = {},
    _closed = false,
  }, Transport)
  return self
end

local function check_open(self)
  if getmetatable(self) ~= Transport then
    error("sfreports: expected a transport_ngx object (use ':' to call methods)", 3)
  end
  if self._closed then error("sfreports: session is closed", 3) end
end

function Transport:__tostring()
  return "sfreports.transport_ngx (" .. (self._closed and "closed" or self.base_url) .. ")"
end

function Transport:set_token(token)
  check_open(self)
  if type(token) ~= "string" then error("sfreports: set_token expects a string", 2) end
  self._auth = bearer(token)
end

function Transport:stats()
  check_open(self)
  return { requests = self._requests, connects = self._connects }
end

function Transport:pending()
  check_open(self)
  return self._pending
end

function Transport:close()
  self._closed = true
  self._auth = nil
end
Transport.__close = Transport.close

---------------------------------------------------------------------------
-- building a request (raises on misuse, before any I/O, like the C session)

-- Returns a plan: { scheme, host, port, pool, head, body, method, allow_empty, raw }.
-- raw: a 2xx JSON answer is to be returned as its text, undecoded.
local function build(self, method, path, body, headers, raw)
  if type(method) ~= "string" or not METHODS[method] then
    error("sfreports: bad method '" .. tostring(method) .. "' (GET, POST, DELETE, PATCH, PUT, HEAD)", 3)
  end
  if type(path) ~= "string" then error("sfreports: request path must be a string", 3) end
  if body ~= nil and type(body) ~= "string" then error("sfreports: request body must be a string or nil", 3) end
  if headers ~= nil and type(headers) ~= "table" then error("sfreports: request headers must be a table", 3) end
  local absolute = match(path, "^https?://") ~= nil
  local url
  if absolute then
    url = path
  elseif byte(path, 1) == 47 then -- "/"
    local why = path_problem(path)
    if why then error("sfreports: request path must not contain " .. why, 3) end
    url = self.base_url .. path
  else
    error("sfreports: request path must start with '/' or be an http(s) URL", 3)
  end
  local scheme, host, port, authority, target = split_url(url)
  -- a URL libcurl would refuse (CURLE_URL_MALFORMAT) is an `invalid` error there too
  if not scheme or find(url, "[%z\1-\32\127]") then
    return nil, errors.new("invalid", "malformed URL", { retryable = false, request_sent = false })
  end

  local h = {
    method .. " " .. target .. " HTTP/1.1",
    "Host: " .. authority,
    "User-Agent: " .. self.user_agent,
    "Accept: application/json",
    "Accept-Encoding: gzip",
  }
  -- The token goes only to the session's own host: an absolute URL (an OAuth endpoint,
  -- another org) never receives it.
  if not absolute and self._auth then h[#h + 1] = "Authorization: " .. self._auth end
  local has_ctype = false
  if headers then
    for k, v in pairs(headers) do
      if type(k) ~= "string" or type(v) ~= "string" then
        error("sfreports: request headers must map strings to strings", 3)
      end
      check_header_text(k, "a request header name")
      check_header_text(v, "a request header value")
      local lk = lower(k)
      if lk == "content-type" then has_ctype = true end
      if lk ~= "content-length" and lk ~= "host" and lk ~= "transfer-encoding" then
        h[#h + 1] = k .. ": " .. v
      end
    end
  end
  local send_body = body ~= nil or BODY_METHODS[method]
  if send_body then
    body = body or ""
    if not has_ctype then h[#h + 1] = "Content-Type: application/json" end
    h[#h + 1] = "Content-Length: " .. #body
  end
  h[#h + 1] = "\r\n"
  return {
    method = method, scheme = scheme, host = host, port = port,
    -- Connections are pooled per host, port and TLS mode: a connection opened without
    -- verification must never serve a client that asked for it.
    pool = format("sfreports:%s:%s:%d:%s", scheme, host, port, self.verify and "v" or "nv"),
    head = concat(h, "\r\n"), body = send_body and body or nil,
    allow_empty = method == "DELETE", raw = raw and true or nil,
  }
end

---------------------------------------------------------------------------
-- I/O: sfreports.ngx_http (bounded reads, total deadline, streaming gunzip)

-- Classifies a finished exchange exactly as the C session does.
local function finish(plan, status, headers, body)
  local value, err = classify(status, headers["content-type"], body, headers, plan.allow_empty, plan.raw)
  if value == nil then return nil, err end
  return value, { status = status, headers = headers, limit_info = headers["sforce-limit-info"] }
end

-- The blocking path for the init phase: a libcurl session used once and closed, so no
-- connection made in the master process is inherited by the workers.
local function request_init(self, method, path, body, headers, raw)
  local o = {}
  for k, v in pairs(self._opts) do o[k] = v end
  o.token = nil
  local s = core.session(o)
  if self._auth then s:set_token(sub(self._auth, 8)) end -- after "Bearer "
  local value, meta = s:request(method, path, body, headers, raw)
  local st = s:stats()
  s:close()
  self._requests = self._requests + st.requests
  self._connects = self._connects + st.connects
  return value, meta
end

-- The whole request (connect, send, every read, a retry on a stale pooled connection)
-- must end by one deadline: the plan's own timeout (what is left of a client call),
-- else the transport's; 0 means none.
local function perform_plan(self, ngx, plan)
  local limit_s = self.timeout
  if plan.timeout and (limit_s <= 0 or plan.timeout < limit_s) then limit_s = plan.timeout end
  local deadline = limit_s > 0 and monotime() + limit_s or math.huge
  self._requests = self._requests + 1
  local status, headers, body = http.perform(self, ngx, plan, deadline, limit_s)
  if not status then return nil, headers end
  return finish(plan, status, headers, body)
end

-- transport:request(method, path, body?, headers?, raw?) -> value, meta | nil, err
-- raw: a 2xx JSON answer is returned as its text, undecoded.
function Transport:request(method, path, body, headers, raw)
  check_open(self)
  local ngx = ngx_api()
  local plan, perr = build(self, method, path, body, headers, raw)
  if not plan then return nil, perr end
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return perform_plan(self, ngx, plan) end
  if phase == "init" then return request_init(self, method, path, body, headers, raw) end
  return nil, M.phase_error(phase)
end

-- run_sync / run_async / fetch_instance: the C session's shortcuts, for parity.
local function id_error(id, what)
  if type(id) ~= "string" then error("sfreports: " .. what .. " must be a string", 3) end
  if (#id == 15 or #id == 18) and not find(id, "%W") then return nil end
  return errors.invalid(what .. " must be 15 or 18 letters and digits")
end

function Transport:run_sync(report_id, metadata_json, details)
  local e = id_error(report_id, "report id")
  if e then return nil, e end
  local path = format("/services/data/v%s/analytics/reports/%s?includeDetails=%s",
    self.api_version, report_id, details == false and "false" or "true")
  return self:request(metadata_json and "POST" or "GET", path, metadata_json)
end

function Transport:run_async(report_id, metadata_json, details)
  local e = id_error(report_id, "report id")
  if e then return nil, e end
  local path = format("/services/data/v%s/analytics/reports/%s/instances?includeDetails=%s",
    self.api_version, report_id, details == false and "false" or "true")
  return self:request("POST", path, metadata_json)
end

function Transport:fetch_instance(report_id, instance_id)
  local e = id_error(report_id, "report id") or id_error(instance_id, "instance id")
  if e then return nil, e end
  return self:request("GET", format("/services/data/v%s/analytics/reports/%s/instances/%s",
    self.api_version, report_id, instance_id))
end

---------------------------------------------------------------------------
-- non-blocking requests: each runs in its own light thread (ngx.thread.spawn); the
-- threads belong to the nginx request that started them, so start and perform them
-- within one request (or one timer).

local semaphore_new
do
  local ok, sem = pcall(require, "ngx.semaphore")
  if ok and type(sem) == "table" then semaphore_new = sem.new end
end

local function finished(self, handle)
  handle._done = true
  self._pending = self._pending - 1
  self._finished[#self._finished + 1] = handle
  if self._sem then self._sem:post(1) end
end

-- transport:start(method, path, body?, headers?, raw?) -> handle (already running)
function Transport:start(method, path, body, headers, raw)
  check_open(self)
  local ngx = ngx_api()
  local plan = build(self, method, path, body, headers, raw)
  local phase = ngx.get_phase()
  local handle = setmetatable({ _done = false }, Handle)
  self._pending = self._pending + 1
  if not plan or not COSOCKET_PHASES[phase] then
    -- no light threads here: the result is known now (init: blocking; others: error)
    handle.value, handle.meta = self:request(method, path, body, headers, raw)
    finished(self, handle)
    return handle
  end
  if semaphore_new and not self._sem then self._sem = semaphore_new() end
  local co, serr = ngx.thread.spawn(function()
    local ok, v, m = pcall(perform_plan, self, ngx, plan)
    if ok then
      handle.value, handle.meta = v, m
    else
      handle.raised = v
    end
    finished(self, handle)
  end)
  if not co then
    self._pending = self._pending - 1
    error("sfreports: cannot start a light thread: " .. tostring(serr), 2)
  end
  return handle
end

local function drain(self)
  local out = self._finished
  self._finished = {}
  return out
end

-- transport:perform(wait_seconds?) -> array of handles finished since the last call.
-- Waits (without blocking the worker) up to wait_seconds for at least one to finish.
function Transport:perform(wait)
  check_open(self)
  wait = wait or 0
  if type(wait) ~= "number" then error("sfreports: perform expects a number of seconds", 2) end
  if next(self._finished) == nil and self._pending > 0 and wait > 0 then
    local ngx = ngx_api()
    local deadline = monotime() + wait
    while next(self._finished) == nil and self._pending > 0 do
      local left = deadline - monotime()
      if left <= 0 then break end
      if self._sem then
        self._sem:wait(left)
      else
        ngx.sleep(min(left, 0.005))
      end
    end
  end
  return drain(self)
end

-- handle:result() -> value, meta | nil, err
function Handle:result()
  if not self._done then
    error("sfreports: request has not finished (drive it with session:perform)", 2)
  end
  if self.raised ~= nil then error(self.raised, 0) end
  return self.value, self.meta
end

function Handle:done() return self._done end

M.Transport = Transport
M.Handle = Handle

return M
