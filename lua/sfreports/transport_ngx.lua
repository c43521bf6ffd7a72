-- sfreports.transport_ngx: the HTTP transport for OpenResty / nginx's Lua module.
-- A blocking libcurl call inside a handler would stall every request of the nginx
-- worker, so here requests travel over cosockets (ngx.socket.tcp): HTTP/1.1 with
-- keep-alive pools (setkeepalive), TLS through sslhandshake with verification,
-- Content-Length, chunked and gzip bodies. Classification and JSON decoding stay in
-- the C core (core.classify, core.gunzip), and so does the request itself: options are
-- checked and defaulted by core.request_conf, and every request is described by
-- core.plan_request / plan_run / plan_instance (path safety, header checks, defaults,
-- bearer only to the own host), exactly as the libcurl session describes its own; this
-- file only frames and transports it. The interface mirrors the libcurl session's:
--   request(method, path, body?, headers?, ropts?) -> value, meta | nil, err
--   run_sync(id, md?, details?, ropts?), run_async(...), fetch_instance(id, iid, ropts?)
--   start(...) -> handle; perform(wait) -> finished handles; handle:result()
--   pending(); set_token(t); stats(); close()
-- ropts: true (raw) or { raw =, timeout = } (timeout caps this request's total time);
-- the runs take { timeout =, start = true } (start returns a handle, like start).
-- Certificates: cosockets verify against nginx's `lua_ssl_trusted_certificate`; the
-- cafile/capath options of the libcurl session do not apply here.
local core = require "sfreports.core"
local errors = require "sfreports.errors"

local type, tostring, tonumber, setmetatable, getmetatable, pcall, error, next =
  type, tostring, tonumber, setmetatable, getmetatable, pcall, error, next
local format, lower, match, find = string.format, string.lower, string.match, string.find
local concat = table.concat
local min, floor = math.min, math.floor
local classify, gunzip, monotime = core.classify, core.gunzip, core.monotime
local plan_request, plan_run, plan_instance = core.plan_request, core.plan_run, core.plan_instance

local M = {}

M.KEEPALIVE_TIMEOUT = 60000 -- ms an idle pooled connection is kept
M.POOL_SIZE = 32            -- idle connections kept per pool (per host, port, TLS mode)
M.MAX_HEADER_BYTES = 256 * 1024

-- Phases where cosockets work; "init" is served by a short-lived libcurl session
-- (blocking is harmless before nginx serves anything).
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
M.COSOCKET_PHASES = COSOCKET_PHASES

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
-- the transport object

local Transport = {}
Transport.__index = Transport
Transport.__name = "sfreports.transport_ngx"

local Handle = {}
Handle.__index = Handle

-- M.new(opts): the options of core.session (base_url, token, api_version, timeout,
-- connect_timeout, stall_timeout, max_response, verify, user_agent, cafile, capath),
-- checked and completed with core.DEFAULTS by the C core (core.request_conf: misuse
-- raises naming the option). Returns the transport, or nil and an `invalid` error for
-- what cosockets cannot do.
function M.new(opts)
  if type(opts) ~= "table" then error("sfreports: transport options must be a table", 2) end
  local conf = core.request_conf(opts)
  local o = conf:options()
  if not plan_request(conf, "GET", "/") then
    return nil, errors.invalid(format("base_url %q is not an http(s) URL", o.base_url))
  end
  if o.proxy ~= nil then
    return nil, errors.invalid("the nginx cosocket transport does not support a proxy; "
      .. "use the libcurl transport outside nginx")
  end
  local self = setmetatable({
    base_url = o.base_url, api_version = o.api_version, user_agent = o.user_agent,
    timeout = o.timeout, connect_timeout = o.connect_timeout,
    stall_timeout = o.stall_timeout, max_response = o.max_response,
    verify = o.verify, cafile = o.cafile, capath = o.capath,
    _conf = conf, -- holds the token (in C memory, never in this table)
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
  self._conf:set_token(token)
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
  self._conf:clear_token()
end
Transport.__close = Transport.close

---------------------------------------------------------------------------
-- framing a request described by the C core (core.plan_*: raises on misuse, before any
-- I/O; nil, err for a URL nothing can be sent to)

-- Adds what HTTP/1.1 over a cosocket needs to a plan: the head (request line, Host, the
-- plan's header lines, Content-Length) and the connection pool's name. Returns the plan.
local function frame(self, plan)
  local h = { plan.method .. " " .. plan.target .. " HTTP/1.1", "Host: " .. plan.authority }
  local lines = plan.headers
  for i = 1, #lines do h[i + 2] = lines[i] end
  if plan.body then h[#h + 1] = "Content-Length: " .. #plan.body end
  h[#h + 1] = "\r\n"
  plan.head = concat(h, "\r\n")
  -- Connections are pooled per host, port and TLS mode: a connection opened without
  -- verification must never serve a client that asked for it.
  plan.pool = format("sfreports:%s:%s:%d:%s", plan.scheme, plan.host, plan.port, self.verify and "v" or "nv")
  return plan
end

-- Returns a framed plan { method, url, scheme, host, port, authority, target, headers,
-- body, raw, allow_empty, timeout, head, pool } | nil, err. ropts: true (raw) or
-- { raw =, timeout = }: timeout (seconds) caps this request's total time.
local function build(self, method, path, body, headers, ropts)
  local plan, err = plan_request(self._conf, method, path, body, headers, ropts)
  if not plan then return nil, err end
  return frame(self, plan)
end

---------------------------------------------------------------------------
-- I/O (cosockets; every failure becomes an sfreports error)

local function net_error(kind, message, sent, retryable)
  return errors.new(kind, message, { retryable = retryable ~= false, request_sent = sent })
end

local function io_error(what, err, plan, sent)
  local where = format("%s %s:%d", what, plan.host, plan.port)
  if err == "timeout" then
    return net_error("timeout", where .. " timed out", sent)
  end
  return net_error("network", where .. " failed: " .. tostring(err), sent)
end

-- Sets the read timeout for the next receive: the stall limit, never past the deadline.
local function arm(sock, self, deadline)
  local left = deadline - monotime()
  if left <= 0 then return false end
  local t = self.stall_timeout > 0 and min(self.stall_timeout, left) or left
  sock:settimeouts(floor(self.connect_timeout * 1000), floor(t * 1000) + 1, floor(t * 1000) + 1)
  return true
end

local function receive(sock, self, deadline, pattern)
  if not arm(sock, self, deadline) then return nil, "timeout" end
  return sock:receive(pattern)
end

-- Reads the status line and header block. Returns status, headers, version | nil, err.
local function read_head(sock, self, deadline)
  while true do
    local line, err = receive(sock, self, deadline, "*l")
    if not line then return nil, err end
    local version, status = match(line, "^HTTP/(%d%.%d) (%d%d%d)")
    if not status then return nil, "malformed status line" end
    status = tonumber(status)
    local headers, size = {}, #line
    while true do
      local hl, herr = receive(sock, self, deadline, "*l")
      if not hl then return nil, herr end
      if hl == "" then break end
      size = size + #hl
      if size > M.MAX_HEADER_BYTES then return nil, "response header block too large" end
      local name, value = match(hl, "^([^:]+):%s*(.-)%s*$")
      if name then headers[lower(name)] = value end
    end
    -- 1xx interim responses (100 Continue) are followed by the real one.
    if status >= 200 then return status, headers, version end
  end
end

local function too_large(self)
  return errors.new("limit", format("response larger than max_response (%d bytes); raise max_response to accept it",
    floor(self.max_response)), { retryable = false, request_sent = true })
end

-- Reads a chunked body. Returns body | nil, err, is_limit.
local function read_chunked(sock, self, deadline)
  local parts, total, max = {}, 0, self.max_response
  while true do
    local line, err = receive(sock, self, deadline, "*l")
    if not line then return nil, err end
    local size = tonumber(match(line, "^%s*(%x+)"), 16)
    if not size then return nil, "malformed chunk size" end
    if size == 0 then break end
    total = total + size
    if max > 0 and total > max then return nil, nil, true end
    local data, derr = receive(sock, self, deadline, size)
    if not data then return nil, derr end
    parts[#parts + 1] = data
    local crlf, cerr = receive(sock, self, deadline, "*l")
    if not crlf then return nil, cerr end
  end
  -- trailers, up to the blank line
  while true do
    local line, err = receive(sock, self, deadline, "*l")
    if not line then return nil, err end
    if line == "" then break end
  end
  return concat(parts)
end

-- Reads until the server closes the connection (no length, no chunking).
local function read_to_close(sock, self, deadline)
  local parts, total, max = {}, 0, self.max_response
  while true do
    local data, err, partial = receive(sock, self, deadline, 65536)
    data = data or partial
    if data and data ~= "" then
      total = total + #data
      if max > 0 and total > max then return nil, nil, true end
      parts[#parts + 1] = data
    end
    if err == "closed" then break end
    if err then return nil, err end
  end
  return concat(parts)
end

-- Reads the body as the head describes it. Returns body, reusable | nil, err, is_limit.
local function read_body(sock, self, deadline, plan, status, headers, version)
  local keep = version == "1.1"
  local conn = lower(headers["connection"] or "")
  if find(conn, "close", 1, true) then keep = false
  elseif find(conn, "keep-alive", 1, true) then keep = true end
  if plan.method == "HEAD" or status == 204 or status == 304 then return "", keep end
  local te = lower(headers["transfer-encoding"] or "")
  if find(te, "chunked", 1, true) then
    local body, err, limit = read_chunked(sock, self, deadline)
    if not body then return nil, err, limit end
    return body, keep
  end
  local len = headers["content-length"]
  if len then
    len = tonumber(len)
    if not len or len < 0 then return nil, "malformed Content-Length" end
    if self.max_response > 0 and len > self.max_response then return nil, nil, true end
    if len == 0 then return "", keep end
    local body, err = receive(sock, self, deadline, len)
    if not body then return nil, err end
    return body, keep
  end
  local body, err, limit = read_to_close(sock, self, deadline)
  if not body then return nil, err, limit end
  return body, false
end

local function is_ip(host)
  return match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil or find(host, ":", 1, true) ~= nil
end

-- Opens (or takes from the pool) a connection for the plan. Returns sock | nil, err.
local function connect(self, ngx, plan, deadline)
  local sock, serr = ngx.socket.tcp()
  if not sock then return nil, net_error("network", "cannot create a cosocket: " .. tostring(serr), false) end
  local ct = floor(min(self.connect_timeout, deadline - monotime()) * 1000)
  if ct <= 0 then return nil, net_error("timeout", "no time left to connect", false) end
  sock:settimeouts(ct, ct, ct)
  local ok, err = sock:connect(plan.host, plan.port, { pool = plan.pool })
  if not ok then return nil, io_error("connect to", err, plan, false) end
  local reused = sock:getreusedtimes() or 0
  if reused == 0 then
    self._connects = self._connects + 1
    if plan.scheme == "https" then
      -- nginx checks the certificate against a host *name* only (X509_check_host), so for
      -- an IP address (a test server; Salesforce URLs always have names) the chain is
      -- verified without a name check, and no SNI is sent (RFC 6066 forbids IPs there).
      local name = not is_ip(plan.host) and plan.host or nil
      local sess, herr = sock:sslhandshake(nil, name, self.verify)
      if not sess then
        sock:close()
        local msg = format("TLS handshake with %s:%d failed: %s", plan.host, plan.port, tostring(herr))
        local why = tostring(herr)
        if self.verify and (find(why, "certificate", 1, true) or find(why, "verify", 1, true)) then
          msg = msg .. " (cosockets verify against nginx's lua_ssl_trusted_certificate; "
            .. "set it to your CA bundle, the cafile option does not apply inside nginx)"
        end
        if herr == "timeout" then return nil, net_error("timeout", msg, false) end
        return nil, net_error("network", msg, false, false)
      end
    end
  end
  return sock, nil, reused
end

-- One exchange on one connection. Returns status, headers, body | nil, err, retry_ok
-- where retry_ok says a reused connection died before answering (safe to retry).
local function exchange(self, ngx, plan, deadline)
  local sock, cerr, reused = connect(self, ngx, plan, deadline)
  if not sock then return nil, cerr end
  if not arm(sock, self, deadline) then
    sock:close()
    return nil, net_error("timeout", "request deadline passed", false)
  end
  local ok, err = sock:send(plan.body and { plan.head, plan.body } or plan.head)
  if not ok then
    sock:close()
    return nil, io_error("sending to", err, plan, false), reused > 0 and err ~= "timeout"
  end
  local status, headers, version = read_head(sock, self, deadline)
  if not status then
    sock:close()
    local hard = headers -- the error string
    return nil, io_error("reading the response from", hard, plan, true), reused > 0 and hard == "closed"
  end
  local body, reusable_or_err, limit = read_body(sock, self, deadline, plan, status, headers, version)
  if not body then
    sock:close()
    local e = limit and too_large(self) or io_error("reading the response body from", reusable_or_err, plan, true)
    e.status = status -- as libcurl reports it: the status line had arrived
    return nil, e
  end
  if reusable_or_err then
    sock:setkeepalive(M.KEEPALIVE_TIMEOUT, M.POOL_SIZE)
  else
    sock:close()
  end
  return status, headers, body
end

-- Classifies a finished exchange exactly as the C session does.
local function finish(self, plan, status, headers, body)
  local enc = lower(headers["content-encoding"] or "")
  if enc == "gzip" or enc == "x-gzip" then
    local plain, gerr = gunzip(body, self.max_response)
    if not plain then
      -- like any body that cannot be decoded (core.classify): not worth retrying
      gerr.status = gerr.status or status
      gerr.retryable = false
      return nil, gerr
    end
    body = plain
  elseif enc ~= "" and enc ~= "identity" then
    return nil, errors.new("decode", "unsupported Content-Encoding " .. enc, { status = status, retryable = false })
  end
  local value, err = classify(status, headers["content-type"], body, headers, plan.allow_empty, plan.raw)
  if value == nil then return nil, err end
  return value, { status = status, headers = headers, limit_info = headers["sforce-limit-info"] }
end

-- The blocking path for the init phase: a libcurl session used once and closed, so no
-- connection made in the master process is inherited by the workers. It gets this
-- transport's checked options and token (core.session(conf)); call(s) makes the request.
local function request_init(self, call)
  local s = core.session(self._conf)
  local value, meta = call(s)
  local st = s:stats()
  s:close()
  self._requests = self._requests + st.requests
  self._connects = self._connects + st.connects
  return value, meta
end

local function perform_plan(self, ngx, plan)
  local deadline = monotime() + (self.timeout > 0 and self.timeout or 1e9)
  self._requests = self._requests + 1
  local status, headers, body = exchange(self, ngx, plan, deadline)
  if not status and body then
    -- A pooled connection the server had already closed: one retry on a fresh one.
    status, headers, body = exchange(self, ngx, plan, deadline)
  end
  if not status then return nil, headers end
  return finish(self, plan, status, headers, body)
end

-- Sends a framed plan (or returns perr when there is none) and waits for the answer:
-- value, meta | nil, err. call(s) is the same request on a libcurl session, for init.
local function send_now(self, plan, perr, call)
  if not plan then return nil, perr end
  local ngx = ngx_api()
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return perform_plan(self, ngx, plan) end
  if phase == "init" then return request_init(self, call) end
  return nil, M.phase_error(phase)
end

local start_plan -- (self, plan, perr, call) -> handle; defined with the light threads

-- The per-request options of a run: { timeout =, start = } (start: a handle is returned).
local function run_start(ropts)
  return type(ropts) == "table" and ropts.start and true or false
end

-- The run options for the blocking libcurl session of the init phase (it must not start).
local function blocking(ropts)
  if type(ropts) ~= "table" then return ropts end
  return { timeout = ropts.timeout }
end

-- transport:request(method, path, body?, headers?, ropts?) -> value, meta | nil, err
-- ropts: true (raw: a 2xx JSON answer is returned as its text, undecoded) or
-- { raw = bool, timeout = seconds } (timeout caps this request's total time).
function Transport:request(method, path, body, headers, ropts)
  check_open(self)
  local plan, perr = build(self, method, path, body, headers, ropts)
  return send_now(self, plan, perr, function(s) return s:request(method, path, body, headers, ropts) end)
end

-- run_sync / run_async / fetch_instance: the report runs, described by the C core as the
-- libcurl session describes them (core.plan_run, core.plan_instance). ropts:
-- { timeout = seconds, start = true }: with start, a handle is returned at once.
local function run(self, plan, perr, ropts, call)
  if plan then frame(self, plan) end
  if run_start(ropts) then return start_plan(self, plan, perr, call) end
  return send_now(self, plan, perr, call)
end

function Transport:run_sync(report_id, metadata_json, details, ropts)
  check_open(self)
  local plan, perr = plan_run(self._conf, "sync", report_id, metadata_json, details, ropts)
  return run(self, plan, perr, ropts, function(s)
    return s:run_sync(report_id, metadata_json, details, blocking(ropts))
  end)
end

function Transport:run_async(report_id, metadata_json, details, ropts)
  check_open(self)
  local plan, perr = plan_run(self._conf, "async", report_id, metadata_json, details, ropts)
  return run(self, plan, perr, ropts, function(s)
    return s:run_async(report_id, metadata_json, details, blocking(ropts))
  end)
end

function Transport:fetch_instance(report_id, instance_id, ropts)
  check_open(self)
  local plan, perr = plan_instance(self._conf, report_id, instance_id, ropts)
  return run(self, plan, perr, ropts, function(s)
    return s:fetch_instance(report_id, instance_id, blocking(ropts))
  end)
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

-- Starts a framed plan in a light thread: a handle (already running). Without a plan
-- (perr) or outside the cosocket phases the result is known now (init: blocking).
function start_plan(self, plan, perr, call)
  local ngx = ngx_api()
  local phase = ngx.get_phase()
  local handle = setmetatable({ _done = false }, Handle)
  self._pending = self._pending + 1
  if not plan or not COSOCKET_PHASES[phase] then
    -- no light threads here: the result is known now (init: blocking; others: error)
    handle.value, handle.meta = send_now(self, plan, perr, call)
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
    error("sfreports: cannot start a light thread: " .. tostring(serr), 3)
  end
  return handle
end

-- transport:start(method, path, body?, headers?, ropts?) -> handle (already running)
function Transport:start(method, path, body, headers, ropts)
  check_open(self)
  local plan, perr = build(self, method, path, body, headers, ropts)
  return start_plan(self, plan, perr, function(s) return s:request(method, path, body, headers, ropts) end)
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
