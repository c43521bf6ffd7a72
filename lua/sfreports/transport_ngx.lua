-- sfreports.transport_ngx: the HTTP transport for OpenResty / nginx's Lua module.
-- A blocking libcurl call inside a handler would stall every request of the nginx
-- worker, so here requests travel over cosockets (ngx.socket.tcp): HTTP/1.1 with
-- keep-alive pools (setkeepalive), TLS through sslhandshake with verification,
-- Content-Length, chunked and gzip bodies, read by sfreports.ngx_http within bounds and
-- one total deadline. Classification and JSON decoding stay in the C core
-- (core.classify, core.inflater), and so does the request itself: options are
-- checked and defaulted by core.request_conf, and every request is described by
-- core.plan_request / plan_run / plan_instance (path safety, header checks, defaults,
-- bearer only to the own host), exactly as the libcurl session describes its own; this
-- file only frames and transports it. The interface mirrors the libcurl session's:
--   request(method, path, body?, headers?, ropts?) -> value, meta | nil, err
--   run_sync(id, md?, details?, ropts?), run_async(...), fetch_instance(id, iid, ropts?)
--   start(...) -> handle; perform(wait) -> finished handles; handle:result()
--   pending(); set_token(t); stats(); close()
-- ropts: true (raw) or { raw =, timeout =, sink = } (timeout caps this request's total
-- time; sink: a 2xx of the type the Accept header names is handed to that function piece
-- by piece, see src/request.c);
-- the runs take { timeout =, start = true } (start returns a handle, like start).
-- Certificates: cosockets verify against nginx's `lua_ssl_trusted_certificate`; the
-- cafile/capath options of the libcurl session do not apply here.
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local http = require "sfreports.ngx_http"
local phase_mod = require "sfreports.phase"

local type, tostring, setmetatable, getmetatable, pcall, error, next =
  type, tostring, setmetatable, getmetatable, pcall, error, next
local format = string.format
local concat = table.concat
local min = math.min
local classify, monotime = core.classify, core.monotime
local plan_request, plan_run, plan_instance = core.plan_request, core.plan_run, core.plan_instance

local M = {}

-- The connection and response limits (pool sizes, line and header block bounds) are
-- those of sfreports.ngx_http.
M.http = http

-- Phases where cosockets work (sfreports.phase); "init" is served by a short-lived
-- libcurl session (blocking is harmless before nginx serves anything).
local COSOCKET_PHASES = phase_mod.COSOCKET_PHASES

local function ngx_api()
  local ngx = phase_mod.ngx()
  if not ngx then
    error("sfreports.transport_ngx: only usable inside nginx with the Lua module (ngx is missing)", 3)
  end
  return ngx
end

-- The error every request gets in a phase without cosockets (set, log, filters...).
function M.phase_error(phase)
  return errors.invalid(phase_mod.unusable_message(phase), { phase = phase })
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
-- I/O: sfreports.ngx_http (bounded reads, total deadline, streaming gunzip)

-- Classifies a finished exchange exactly as the C session does. A body that went to the
-- plan's sink is its byte count (the value, as the C session returns it).
local function finish(plan, status, headers, body)
  if type(body) == "number" then
    return body, { status = status, headers = headers, limit_info = headers["sforce-limit-info"], bytes = body }
  end
  local value, err = classify(status, headers["content-type"], body, headers, plan.allow_empty, plan.raw,
    plan.sink and plan.stream_type or nil)
  if value == nil then
    err.limit_info = headers["sforce-limit-info"]
    return nil, err
  end
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

-- The whole request (connect, send, every read, a retry on a stale pooled connection)
-- must end by one deadline: the plan's own timeout (what is left of a client call),
-- else the transport's; 0 means none.
local function perform_plan(self, ngx, plan)
  local limit_s = self.timeout
  if plan.timeout and (limit_s <= 0 or plan.timeout < limit_s) then limit_s = plan.timeout end
  local deadline = limit_s > 0 and monotime() + limit_s or math.huge
  self._requests = self._requests + 1
  local io, started = {}, monotime()
  local status, headers, body = http.perform(self, ngx, plan, deadline, limit_s, io)
  local value, meta
  if status then value, meta = finish(plan, status, headers, body) else meta = headers end
  -- what the exchange cost, as the libcurl session reports it (meta or error)
  meta.bytes_in, meta.bytes_out, meta.connection_reused = io.bytes_in, io.bytes_out, io.connection_reused
  meta.elapsed, meta.target = monotime() - started, plan.target
  return value, meta
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
