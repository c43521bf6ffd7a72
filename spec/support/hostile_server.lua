-- spec/support/hostile_server.lua: the handler of the hostile HTTP server (runs inside
-- nginx, see spec/support/hostile.lua). It writes arbitrary bytes on the raw downstream
-- socket (ngx.req.socket(true)), so it can misbehave in ways no well-formed server (the
-- fake org) can: endless lines, oversized header blocks, bodies trickled a byte at a
-- time, broken chunking, gzip bombs, bad JSON shapes, redirects, huge error messages.
--
-- A request chooses its case by path, /c/<case>/<id>[/anything], or gets the case set
-- by /_set?case=<case>&id=<id> (for clients that build their own paths). What the server
-- did for each id (bytes sent, whether the client closed first, the request head) is
-- kept in a shared dict and answered by /_seen?id=<id> as JSON.
local ngx = ngx -- luacheck: ignore 113 (nginx's global: this file runs only there)
local cjson = require "cjson.safe"

local M = {}

local dict = ngx.shared.hostile
local BLOCK = string.rep("A", 65536)

---------------------------------------------------------------------------
-- what the server saw, per id

local function put(id, key, value) dict:set(id .. ":" .. key, value) end
local function add(id, key, n) dict:incr(id .. ":" .. key, n, 0) end

local function seen(id)
  local out = {}
  for _, k in ipairs({ "requests", "sent", "closed", "finished", "head", "case" }) do
    out[k] = dict:get(id .. ":" .. k)
  end
  out.closed = out.closed == true
  out.finished = out.finished == true
  out.sent = out.sent or 0
  out.requests = out.requests or 0
  return out
end

---------------------------------------------------------------------------
-- a raw connection that counts what it sends and notices the client leaving

local Conn = {}
Conn.__index = Conn

-- Sends s; false once the client has gone (then the case stops and says so).
function Conn:send(s)
  if self.gone then return false end
  local ok = self.sock:send(s)
  if not ok then
    self.gone = true
    put(self.id, "closed", true)
    return false
  end
  add(self.id, "sent", #s)
  return true
end

-- Waits secs without sending; false when the client closed meanwhile. A read with a
-- timeout wakes up at once on a close, where ngx.sleep would not notice it.
function Conn:pause(secs)
  if self.gone then return false end
  self.sock:settimeout(math.max(1, math.floor(secs * 1000)))
  while true do
    local data, err = self.sock:receive(1)
    if not data then
      if err == "timeout" then return true end
      self.gone = true
      put(self.id, "closed", true)
      return false
    end
  end
end

-- Sends blocks of filler until the client leaves or `cap` bytes went out.
function Conn:endless(cap, block)
  block = block or BLOCK
  local n = 0
  while n < cap do
    if not self:send(block) then return false end
    n = n + #block
  end
  return true
end

-- Sends s one byte every `interval` seconds.
function Conn:trickle(s, interval)
  for i = 1, #s do
    if not self:send(s:sub(i, i)) then return false end
    if not self:pause(interval) then return false end
  end
  return true
end

-- Every answer closes its connection: a case never serves a second request.
local function response(status, headers, body)
  local h = { "HTTP/1.1 " .. status, "Connection: close" }
  for _, line in ipairs(headers) do h[#h + 1] = line end
  if body then h[#h + 1] = "Content-Length: " .. #body end
  return table.concat(h, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function json_response(status, body)
  return response(status, { "Content-Type: application/json;charset=UTF-8" }, body)
end

local function chunk(s) return string.format("%x\r\n%s\r\n", #s, s) end

local CHUNKED_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
  .. "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"

---------------------------------------------------------------------------
-- the cases: each gets the connection and the query arguments; returns true when it
-- played to its end (the client did not leave first)

local CASES = {}

function CASES.ok(c)
  return c:send(json_response("200 OK", '{"ok":true}'))
end

-- a token endpoint whose access_token would split an Authorization header
function CASES.token_crlf(c)
  return c:send(json_response("200 OK",
    '{"access_token":"00Dx!AQ\\r\\nX-Injected: 1","instance_url":"http://127.0.0.1:9","token_type":"Bearer"}'))
end

-- the request head back, as a JSON body (what a client sent, Authorization included)
function CASES.echo(c)
  return c:send(json_response("200 OK", cjson.encode({ head = c.head, headers = ngx.req.get_headers() })))
end

-- the request head echoed into an API error (message, code) and a response header
function CASES.echo_error(c)
  local auth = ngx.req.get_headers()["authorization"] or ""
  local body = cjson.encode({ { message = "bad request: " .. c.head, errorCode = auth } })
  return c:send(response("400 Bad Request", { "Content-Type: application/json", "X-Echo: " .. auth }, body))
end

-- the request body and Authorization echoed into an OAuth error (a token endpoint
-- repeating the form it refused: every secret of a grant, URL-encoded)
function CASES.echo_body(c)
  local body = ngx.req.get_body_data() or ""
  local auth = ngx.req.get_headers()["authorization"] or ""
  local doc = cjson.encode({ error = "invalid_grant", error_description = "refused: " .. body .. " " .. auth })
  return c:send(response("400 Bad Request", { "Content-Type: application/json" }, doc))
end

function CASES.endless_status(c, a)
  return c:send("HTTP/1.1 200 ") and c:endless(a.cap)
end

-- interim responses forever: every status line is short, their number is not
function CASES.endless_interim(c, a)
  return c:endless(a.cap, string.rep("HTTP/1.1 100 Continue\r\n\r\n", 2048))
end

function CASES.endless_header(c, a)
  return c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Endless: ") and c:endless(a.cap)
end

-- a header block of endless short lines
function CASES.many_headers(c, a)
  return c:send("HTTP/1.1 200 OK\r\n") and c:endless(a.cap, string.rep("X-Many: 0123456789abcdef\r\n", 2048))
end

function CASES.endless_chunk_size(c, a)
  return c:send(CHUNKED_HEAD .. "1") and c:endless(a.cap, string.rep("0", 65536))
end

function CASES.bad_chunk_size(c)
  return c:send(CHUNKED_HEAD .. chunk('{"a":') .. "zz\r\n1\r\n}\r\n0\r\n\r\n")
end

function CASES.endless_trailer(c, a)
  return c:send(CHUNKED_HEAD .. chunk('{"ok":true}') .. "0\r\nX-Trailer: ") and c:endless(a.cap)
end

function CASES.many_trailers(c, a)
  return c:send(CHUNKED_HEAD .. chunk('{"ok":true}') .. "0\r\n")
    and c:endless(a.cap, string.rep("X-Trailer: 0123456789abcdef\r\n", 2048))
end

-- a body of `bytes` bytes, one every `interval` seconds (the head arrives at once)
function CASES.trickle_body(c, a)
  local body = '{"pad":"' .. string.rep("x", math.max(0, a.bytes - 10)) .. '"}'
  return c:send(response("200 OK", { "Content-Type: application/json", "Content-Length: " .. #body }))
    and c:trickle(body, a.interval)
end

-- the whole response (head included) one byte every `interval` seconds
function CASES.trickle_head(c, a)
  return c:trickle(json_response("200 OK", '{"pad":"' .. string.rep("x", a.bytes) .. '"}'), a.interval)
end

-- the head, then nothing for `pause` seconds, then the body
function CASES.stall(c, a)
  local body = '{"ok":true}'
  return c:send(response("200 OK", { "Content-Type: application/json", "Content-Length: " .. #body }))
    and c:pause(a.pause) and c:send(body)
end

-- accepts and says nothing for `pause` seconds
function CASES.silent(c, a)
  return c:pause(a.pause)
end

local function bomb()
  local f = assert(io.open(ngx.config.prefix() .. "bomb.gz", "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- a small gzip body that inflates to 64 MB of zeros
function CASES.gzip_bomb(c)
  local gz = bomb()
  return c:send(response("200 OK", { "Content-Type: application/json", "Content-Encoding: gzip" }, gz))
end

function CASES.gzip_bomb_chunked(c)
  local gz, parts = bomb(), {}
  for i = 1, #gz, 4096 do parts[#parts + 1] = chunk(gz:sub(i, i + 4095)) end
  return c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    .. "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" .. table.concat(parts) .. "0\r\n\r\n")
end

-- JSON values of shapes no Salesforce answer has
local SHAPES = { null = "null", ["true"] = "true", str = '"str"', obj = "{}", arr = "[]", num = "42" }
for name, body in pairs(SHAPES) do
  CASES["shape_" .. name] = function(c) return c:send(json_response("200 OK", body)) end
end

function CASES.redirect(c)
  return c:send(response("302 Found", { "Location: http://127.0.0.1:9/elsewhere" }, ""))
end

-- a 2 MB error message full of terminal escapes and line breaks
function CASES.big_error(c)
  local nasty = "\27[2J\27]0;pwned\7\r\nX-Injected: 1\r\n\0"
  local msg = string.rep("boom " .. nasty, math.floor(2 * 1024 * 1024 / (5 + #nasty)))
  local body = cjson.encode({ { message = msg, errorCode = "BAD_" .. nasty } })
  return c:send(json_response("400 Bad Request", body))
end

function CASES.bad_content_length(c)
  return c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12abc\r\n\r\n{}")
end

-- promises 100 bytes, sends 10, closes
function CASES.short_body(c)
  return c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":1234}")
end

M.CASES = CASES

---------------------------------------------------------------------------
-- dispatch

local function args_of(q)
  return {
    cap = tonumber(q.cap) or 256 * 1024 * 1024,
    interval = tonumber(q.interval) or 1,
    bytes = tonumber(q.bytes) or 64,
    pause = tonumber(q.pause) or 5,
  }
end

local function plain(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(body)
  return ngx.exit(status)
end

function M.serve()
  local uri, q = ngx.var.uri, ngx.req.get_uri_args()
  if uri == "/" then return plain(200, '{"hostile":true}') end
  if uri == "/_seen" then return plain(200, cjson.encode(seen(tostring(q.id)))) end
  if uri == "/_set" then
    dict:set("current", cjson.encode({ case = q.case, id = q.id, args = q }))
    return plain(200, '{"set":true}')
  end
  local case, id = uri:match("^/c/([%w_]+)/([%w_%-]+)")
  if not case then
    local cur = cjson.decode(dict:get("current") or "null")
    if not cur then return plain(404, '[{"message":"no case set","errorCode":"NOT_FOUND"}]') end
    case, id, q = cur.case, cur.id, cur.args
  end
  local play = CASES[case]
  if not play then return plain(404, '[{"message":"no such case","errorCode":"NOT_FOUND"}]') end
  ngx.req.read_body()
  local head = ngx.req.raw_header()
  local sock, err = ngx.req.socket(true)
  if not sock then
    ngx.log(ngx.ERR, "hostile: no raw socket: ", err)
    return ngx.exit(500)
  end
  add(id, "requests", 1)
  put(id, "case", case)
  put(id, "head", head)
  local conn = setmetatable({ sock = sock, id = id, head = head, gone = false }, Conn)
  if play(conn, args_of(q)) then put(id, "finished", true) end
  return ngx.exit(ngx.OK)
end

return M
