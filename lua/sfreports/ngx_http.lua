-- sfreports.ngx_http: one HTTP/1.1 exchange over an nginx cosocket, for transport_ngx:
-- connect (keep-alive pools, TLS), send, and a response read as defensively as libcurl
-- reads it, since the server may be broken or hostile:
--   * every line (status, header, chunk size, trailer) and each header block is bounded,
--     so an endless line fails after a few hundred kilobytes, not gigabytes;
--   * `deadline` bounds the whole exchange (connect + send + every read): each wait is
--     armed with what is left, so a server trickling one byte a second still times out;
--     `stall_timeout` bounds each silence on its own;
--   * a gzip body is inflated as it arrives (core.inflater) and stopped at max_response;
--   * a request with a sink (plan.sink, see src/request.c) whose answer is a 2xx of
--     plan.stream_type (core.streams decides, as in the libcurl engine) hands each piece
--     to the sink as it is read, never holding the body: sink(piece, headers) the first
--     time, sink(piece) after; body is then the number of bytes handed over. A failure
--     after the first byte reached the sink is not retryable (err.streamed = bytes).
--   perform(t, ngx, plan, deadline, limit_s, io?) -> status, headers, body | nil, err
--   (io, when given, receives what the exchange cost: bytes_in, bytes_out, connection_reused)
-- t is the transport (connect_timeout, stall_timeout, max_response, verify, _connects);
-- plan is the built request: scheme, host, port, pool, head, body?, method.
local core = require "sfreports.core"
local errors = require "sfreports.errors"

local tostring, tonumber, setmetatable = tostring, tonumber, setmetatable
local format, lower, match, find, sub, byte = string.format, string.lower, string.match,
  string.find, string.sub, string.byte
local concat = table.concat
local min, max, ceil, floor = math.min, math.max, math.ceil, math.floor
local monotime, new_inflater, streams = core.monotime, core.inflater, core.streams
local pcall, type = pcall, type

local M = {}

M.KEEPALIVE_TIMEOUT = 60000    -- ms an idle pooled connection is kept
M.POOL_SIZE = 32               -- idle connections kept per pool (per host, port, TLS mode)
M.MAX_LINE_BYTES = 100 * 1024  -- one status, header or trailer line (libcurl's CURL_MAX_HTTP_HEADER)
M.MAX_HEADER_BYTES = 256 * 1024 -- all header lines of a response, interim ones and trailers included
M.MAX_CHUNK_LINE = 4096        -- a chunk-size line, extensions included
M.READ_BYTES = 65536           -- the most one read takes from the socket
local MAX_HEX_DIGITS = 15      -- a chunk size up to 2^60: exact in a double

local MAX_TIMER_MS = 2147483647 -- cosocket timeouts are 31-bit milliseconds

---------------------------------------------------------------------------
-- errors

local function new_error(kind, message, retryable, sent)
  return errors.new(kind, message, { retryable = retryable, request_sent = sent })
end

-- What a failed wait means: the total deadline, the stall limit, or a socket error.
local function wait_error(x, reason, what)
  if reason == "deadline" then
    return new_error("timeout", format("%s %s: no complete response within the request timeout (%g s)",
      what, x.where, x.limit_s), true, x.sent)
  elseif reason == "stall" then
    -- the libcurl engine's message, word for word
    return new_error("timeout", format("no data received for %g seconds (stall_timeout)", x.t.stall_timeout),
      true, x.sent)
  elseif reason == "timeout" then
    return new_error("timeout", what .. " " .. x.where .. " timed out", true, x.sent)
  end
  return new_error("network", what .. " " .. x.where .. " failed: " .. tostring(reason), true, x.sent)
end

-- A response that breaks HTTP/1.1 framing: retrying would only get the same bytes.
local function protocol_error(x, message)
  return new_error("http", message .. " (from " .. x.where .. ")", false, true)
end

local function too_large(t)
  return errors.new("limit", format("response larger than max_response (%d bytes); raise max_response to accept it",
    floor(t.max_response)), { retryable = false, request_sent = true })
end

---------------------------------------------------------------------------
-- a buffered reader whose every wait is bounded by the deadline and the stall limit

local Reader = {}
Reader.__index = Reader

-- Arms the socket's timeouts for one wait; returns false when the deadline has passed
-- and the reason a timeout would have ("stall" or "deadline").
local function arm(x)
  local left = x.deadline - monotime()
  if left <= 0 then return false, "deadline" end
  local wait, why = left, "deadline"
  local stall = x.t.stall_timeout
  if stall > 0 and stall < left then wait, why = stall, "stall" end
  local ms = min(max(ceil(wait * 1000), 1), MAX_TIMER_MS)
  x.sock:settimeouts(ms, ms, ms)
  return true, why
end

-- Appends whatever bytes arrive next (up to READ_BYTES). Returns true | nil, reason.
function Reader:fill()
  local armed, why = arm(self.x)
  if not armed then return nil, why end
  local data, err = self.x.sock:receiveany(M.READ_BYTES)
  if not data then
    if err == "timeout" then return nil, why end
    return nil, err
  end
  self.got = self.got + #data
  self.x.bytes_in = self.x.bytes_in + #data
  if self.pos > #self.buf then
    self.buf = data
  else
    self.buf = sub(self.buf, self.pos) .. data
  end
  self.pos = 1
  return true
end

-- The next line without its line end (CRLF, or a bare LF as libcurl accepts), at most
-- `limit` bytes long. Returns line | nil, reason ("too long" or a wait's reason).
function Reader:line(limit)
  while true do
    local e = find(self.buf, "\n", self.pos, true)
    if e then
      local line = sub(self.buf, self.pos, e - 1)
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      if #line > limit then return nil, "too long" end
      self.pos = e + 1
      return line
    end
    if #self.buf - self.pos + 1 > limit + 1 then return nil, "too long" end
    local ok, why = self:fill()
    if not ok then return nil, why end
  end
end

-- Up to n bytes: what is buffered, or else what the next read brings.
function Reader:take(n)
  if self.pos > #self.buf then
    local ok, why = self:fill()
    if not ok then return nil, why end
  end
  local s = sub(self.buf, self.pos, self.pos + n - 1)
  self.pos = self.pos + #s
  return s
end

local function new_reader(x)
  return setmetatable({ x = x, buf = "", pos = 1, got = 0 }, Reader)
end

---------------------------------------------------------------------------
-- the response head

-- The error for a line over its limit: the line's own bound, or what was left of the
-- header block's (`what` is "header" or "trailer").
local function line_error(x, limit, line_name, what)
  if limit < M.MAX_LINE_BYTES then
    return protocol_error(x, format("response %s block larger than %d bytes", what, M.MAX_HEADER_BYTES))
  end
  return protocol_error(x, format("response %s line longer than %d bytes", line_name, limit))
end

-- Reads a block of header lines up to the blank line into `headers` (lower-case names)
-- from the budget left; returns the budget left | nil, err.
local function read_header_lines(x, r, headers, budget, what)
  while true do
    local limit = min(M.MAX_LINE_BYTES, budget)
    local line, why = r:line(limit)
    if not line then
      if why ~= "too long" then return nil, wait_error(x, why, "reading the response from") end
      return nil, line_error(x, limit, what, what)
    end
    budget = budget - #line - 2
    if line == "" then return budget end
    local name, value = match(line, "^([^:%s]+):%s*(.-)%s*$")
    if name then headers[lower(name)] = value end
  end
end

-- Reads the status line and header block, skipping 1xx interim responses, all within
-- one budget. Returns status, headers, version | nil, err.
local function read_head(x, r)
  local budget = M.MAX_HEADER_BYTES
  while true do
    local limit = min(M.MAX_LINE_BYTES, budget)
    local line, why = r:line(limit)
    if not line then
      if why == "too long" then return nil, line_error(x, limit, "status", "header") end
      return nil, wait_error(x, why, "reading the response from")
    end
    budget = budget - #line - 2
    local version, status = match(line, "^HTTP/(%d%.%d) (%d%d%d)")
    if not status then return nil, protocol_error(x, "malformed status line") end
    status = tonumber(status)
    local headers = {}
    local left, err = read_header_lines(x, r, headers, budget, "header")
    if not left then return nil, err end
    budget = left
    if status >= 200 then return status, headers, version end
  end
end

---------------------------------------------------------------------------
-- the body: wire bytes counted against max_response, gzip inflated as it arrives

local Body = {}
Body.__index = Body

-- stream: nil (the body is collected), or { sink =, headers = } (it goes to the sink).
local function new_body(x, gzip, stream)
  return setmetatable({ x = x, parts = {}, wire = 0, sunk = 0, stream = stream,
    inflater = gzip and new_inflater(x.t.max_response) or nil }, Body)
end

local function sink_error(self, why)
  return errors.new("io", "the sink failed: " .. why, { retryable = false, request_sent = true,
    streamed = self.sunk })
end

-- Hands the plain pieces waiting in parts to the stream's sink. Returns true | nil, err.
function Body:give()
  local parts, stream = self.parts, self.stream
  self.parts = {}
  for i = 1, #parts do
    local s = parts[i]
    if #s > 0 then
      self.sunk = self.sunk + #s
      local ok, r1, r2
      if stream.headers then
        local h = stream.headers
        stream.headers = nil
        ok, r1, r2 = pcall(stream.sink, s, h)
      else
        ok, r1, r2 = pcall(stream.sink, s)
      end
      if not ok then
        local t = type(r1)
        return nil, sink_error(self, (t == "string" or t == "number") and tostring(r1) or "the sink raised a " .. t)
      end
      if r1 == false or (r1 == nil and r2 ~= nil) then
        return nil, sink_error(self, r2 ~= nil and tostring(r2) or "the sink refused a chunk")
      end
    end
  end
  return true
end

function Body:add(data)
  self.wire = self.wire + #data
  local cap = self.x.t.max_response
  if cap > 0 and self.wire > cap then return nil, too_large(self.x.t) end
  if self.inflater then
    local n, err = self.inflater:feed(data, self.parts)
    if not n then return nil, err end
  else
    self.parts[#self.parts + 1] = data
  end
  if self.stream then return self:give() end
  return true
end

-- The body's text, or for a stream the number of bytes the sink got.
function Body:finish()
  if self.inflater then
    local n, err = self.inflater:finish()
    self.inflater:close()
    if not n then return nil, err end
  end
  if self.stream then return self.sunk end
  return concat(self.parts)
end

function Body:close()
  if self.inflater then self.inflater:close() end
  self.parts = {}
end

-- n bytes exactly into the body. Returns true | nil, err.
local function read_exactly(x, r, body, n)
  while n > 0 do
    local s, why = r:take(min(n, M.READ_BYTES))
    if not s then return nil, wait_error(x, why, "reading the response body from") end
    n = n - #s
    local ok, err = body:add(s)
    if not ok then return nil, err end
  end
  return true
end

-- A chunk-size line's size, or nil when it is malformed (extensions are ignored).
local function chunk_size(line)
  local hex, rest = match(line, "^%s*(%x+)(.*)$")
  if not hex or #hex > MAX_HEX_DIGITS then return nil end
  if not (find(rest, "^%s*$") or find(rest, "^%s*;")) then return nil end
  return tonumber(hex, 16)
end

local function read_chunked(x, r, body)
  while true do
    local line, why = r:line(M.MAX_CHUNK_LINE)
    if not line then
      if why == "too long" then
        return nil, protocol_error(x, format("chunk size line longer than %d bytes", M.MAX_CHUNK_LINE))
      end
      return nil, wait_error(x, why, "reading the response body from")
    end
    local size = chunk_size(line)
    if not size then return nil, protocol_error(x, "malformed chunk size") end
    if size == 0 then break end
    local cap = x.t.max_response
    if cap > 0 and body.wire + size > cap then return nil, too_large(x.t) end
    local ok, err = read_exactly(x, r, body, size)
    if not ok then return nil, err end
    local crlf
    crlf, why = r:line(0)
    if not crlf then
      if why == "too long" then return nil, protocol_error(x, "chunk not followed by CRLF") end
      return nil, wait_error(x, why, "reading the response body from")
    end
  end
  -- trailers, up to the blank line: bounded like a header block
  local left, err = read_header_lines(x, r, {}, M.MAX_HEADER_BYTES, "trailer")
  if not left then return nil, err end
  return true
end

local function read_to_close(x, r, body)
  while true do
    local s, why = r:take(M.READ_BYTES)
    if not s then
      if why == "closed" then return true end
      return nil, wait_error(x, why, "reading the response body from")
    end
    local ok, err = body:add(s)
    if not ok then return nil, err end
  end
end

local function keep_alive(version, headers)
  local conn = lower(headers["connection"] or "")
  if find(conn, "close", 1, true) then return false end
  if find(conn, "keep-alive", 1, true) then return true end
  return version == "1.1"
end

-- Reads the body the head describes. Returns body, reusable | nil, err.
local function read_body(x, r, status, headers, version)
  local keep = keep_alive(version, headers)
  if x.plan.method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
    return "", keep
  end
  local enc = lower(headers["content-encoding"] or "")
  local gzip = enc == "gzip" or enc == "x-gzip"
  if not gzip and enc ~= "" and enc ~= "identity" then
    return nil, errors.new("decode", "unsupported Content-Encoding " .. enc, { retryable = false })
  end
  local stream
  local plan = x.plan
  if plan.sink and streams(plan.stream_type, status, headers["content-type"]) then
    stream = { sink = plan.sink, headers = headers }
  end
  local body = new_body(x, gzip, stream)
  local ok, err
  if find(lower(headers["transfer-encoding"] or ""), "chunked", 1, true) then
    ok, err = read_chunked(x, r, body)
  elseif headers["content-length"] then
    local len = match(headers["content-length"], "^%d+$") and tonumber(headers["content-length"])
    if not len then
      body:close()
      return nil, protocol_error(x, "malformed Content-Length")
    end
    local cap = x.t.max_response
    if cap > 0 and len > cap then
      body:close()
      return nil, too_large(x.t)
    end
    ok, err = read_exactly(x, r, body, len)
  else
    ok, err = read_to_close(x, r, body)
    keep = false
  end
  if ok then
    local text
    text, err = body:finish()
    if text then return text, keep and r.pos > #r.buf end
  end
  body:close()
  if gzip and err.kind == "decode" then err.retryable = false end
  if body.sunk > 0 then
    -- part of the answer is in the sink: trying again would repeat it
    err.retryable, err.streamed = false, body.sunk
  end
  return nil, err
end

---------------------------------------------------------------------------
-- connecting

local function is_ip(host)
  return match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil or find(host, ":", 1, true) ~= nil
end

local function handshake(x, sock)
  local t, plan = x.t, x.plan
  -- nginx checks the certificate against a host *name* only (X509_check_host), so for
  -- an IP address (a test server; Salesforce URLs always have names) the chain is
  -- verified without a name check, and no SNI is sent (RFC 6066 forbids IPs there).
  local name = not is_ip(plan.host) and plan.host or nil
  -- Under pcall: when a handshake completes at once but the certificate check failed,
  -- some lua-resty-core versions raise "assertion failed!" (socket.lua, reading the
  -- result) instead of returning the error. That is a failed handshake, never a success.
  local ok, sess, herr = pcall(sock.sslhandshake, sock, nil, name, t.verify)
  if ok and sess then return true end
  sock:close()
  local unreported = not ok
  local why = unreported and "nginx's Lua module did not report why" or tostring(herr)
  local msg = format("TLS handshake with %s failed: %s", x.where, why)
  if t.verify and (unreported or find(why, "certificate", 1, true) or find(why, "verify", 1, true)) then
    msg = msg .. " (cosockets verify against nginx's lua_ssl_trusted_certificate; "
      .. "set it to your CA bundle, the cafile option does not apply inside nginx)"
  end
  if herr == "timeout" then return nil, new_error("timeout", msg, true, false) end
  return nil, new_error("network", msg, false, false)
end

-- Opens (or takes from the pool) a connection. Returns sock, reused_times | nil, err.
local function connect(x, ngx)
  local sock, serr = ngx.socket.tcp()
  if not sock then return nil, new_error("network", "cannot create a cosocket: " .. tostring(serr), true, false) end
  local left = x.deadline - monotime()
  local ct = floor(min(x.t.connect_timeout > 0 and x.t.connect_timeout or left, left) * 1000)
  if ct <= 0 then return nil, new_error("timeout", "no time left to connect to " .. x.where, true, false) end
  ct = min(ct, MAX_TIMER_MS)
  sock:settimeouts(ct, ct, ct)
  local ok, err = sock:connect(x.plan.host, x.plan.port, { pool = x.plan.pool })
  if not ok then return nil, wait_error(x, err, "connect to") end
  local reused = sock:getreusedtimes() or 0
  if reused == 0 then
    x.t._connects = x.t._connects + 1
    if x.plan.scheme == "https" then
      local hok, herr = handshake(x, sock)
      if not hok then return nil, herr end
    end
  end
  return sock, reused
end

---------------------------------------------------------------------------
-- one exchange

-- Returns status, headers, body | nil, err, retry_ok: retry_ok says a pooled connection
-- died before any byte of the answer (the server had closed it; safe to retry).
local function exchange(x, ngx)
  local sock, reused = connect(x, ngx)
  if not sock then return nil, reused end
  x.sock, x.sent, x.reused = sock, false, reused > 0
  local armed = arm(x)
  if not armed then
    sock:close()
    return nil, wait_error(x, "deadline", "sending to")
  end
  local plan = x.plan
  local ok, err = sock:send(plan.body and { plan.head, plan.body } or plan.head)
  if not ok then
    sock:close()
    return nil, wait_error(x, err, "sending to"), reused > 0 and err ~= "timeout"
  end
  x.sent = true
  x.bytes_out = x.bytes_out + #plan.head + (plan.body and #plan.body or 0)
  local r = new_reader(x)
  local status, headers, version = read_head(x, r)
  if not status then
    sock:close()
    local e = headers
    return nil, e, reused > 0 and r.got == 0 and e.kind == "network"
  end
  local body, reusable = read_body(x, r, status, headers, version)
  if not body then
    sock:close()
    reusable.status = status -- as libcurl reports it: the status line had arrived
    return nil, reusable
  end
  if reusable then
    sock:setkeepalive(M.KEEPALIVE_TIMEOUT, M.POOL_SIZE)
  else
    sock:close()
  end
  return status, headers, body
end

-- perform(t, ngx, plan, deadline, limit_s): one request, with one retry on a fresh
-- connection when a pooled one turns out closed; both within the same deadline.
-- limit_s is the total time allowed (for messages). Returns status, headers, body | nil, err.
function M.perform(t, ngx, plan, deadline, limit_s, io)
  local x = { t = t, plan = plan, deadline = deadline, limit_s = limit_s,
    where = format("%s:%d", plan.host, plan.port), sent = false, bytes_in = 0, bytes_out = 0, reused = false }
  local status, headers, body = exchange(x, ngx)
  if not status and body then
    status, headers, body = exchange(x, ngx)
  end
  if io then io.bytes_in, io.bytes_out, io.connection_reused = x.bytes_in, x.bytes_out, x.reused end
  if not status then return nil, headers end
  return status, headers, body
end

return M
