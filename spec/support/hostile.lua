-- spec/support/hostile.lua: a hostile HTTP server for the specs (the fake org is a
-- well-behaved server and cannot misbehave at the byte level). It is an nginx whose
-- handler (spec/support/hostile_server.lua) writes raw bytes on the client connection.
--   local hostile = require "hostile"
--   local srv = hostile.start()                 -- in setup(); a free loopback port
--   srv.url                                      -- "http://127.0.0.1:<port>"
--   srv:path("endless_header", id, { cap = n })  -- "/c/endless_header/<id>?cap=n"
--   srv:set_case("shape_null", id)               -- for every path that is not /c/...
--   srv:seen(id)        -- { requests, sent, closed, finished, head, case }
--   srv:wait_seen(id, function(seen) return seen.closed end)
--   srv:stop()                                   -- in teardown()
--   hostile.new_id()    -- a fresh id, so that every test reads only its own record
--   local runner = hostile.start_runner()        -- an nginx running sfreports (cosockets)
--   runner:run{ transport = opts | client = opts, calls = { { op = "request", args = {...} } } }
--   runner:stop()
-- Cases and their arguments (cap, interval, bytes, pause) are listed in hostile_server.lua.
-- It starts from any checkout location, as root or not: what the workers read (the
-- handler, the gzip bomb) is copied into the nginx prefix, and spec/support/nginx.lua
-- runs the workers as the user who started nginx.
local fakeorg = require "fakeorg"
local nginx = require "nginx"

local hostile = {}

local CONF = nginx.conf({ connections = 512, lua_path = "{{PREFIX}}/?.lua", http = [[
    lua_shared_dict hostile 8m;
    lua_socket_log_errors off;
]], server = [[
        location / { content_by_lua_block { require("hostile_server").serve() } }
]] })

-- 64 MB of zeros, gzipped (about 64 KB): inflates far past any spec's max_response.
local function gzip_bomb()
  local out, ok = nginx.run("head -c 67108864 /dev/zero | gzip -c -1")
  if not ok then error("cannot make the gzip bomb", 3) end
  return out
end

local Server = {}
Server.__index = Server

-- Starts the server. Raises when nginx cannot start.
function hostile.start()
  local here = nginx.root() .. "/spec/support/"
  local srv = nginx.start({ conf = CONF, files = {
    ["hostile_server.lua"] = assert(fakeorg.read_file(here .. "hostile_server.lua")),
    ["bomb.gz"] = gzip_bomb(),
  } })
  return setmetatable({ nginx = srv, url = srv.url, port = srv.port, dir = srv.dir }, Server)
end

local counter = 0
function hostile.new_id()
  counter = counter + 1
  local f = assert(io.open("/dev/urandom", "rb"))
  local b = f:read(4)
  f:close()
  return ("t%d_%02x%02x%02x%02x"):format(counter, b:byte(1, 4))
end

local function query(args)
  local q = {}
  for k, v in pairs(args or {}) do q[#q + 1] = k .. "=" .. tostring(v) end
  table.sort(q)
  return #q > 0 and "?" .. table.concat(q, "&") or ""
end

-- The request path that plays `case` for `id`.
function Server.path(_, case, id, args)
  return "/c/" .. case .. "/" .. id .. query(args)
end

-- Plays `case` for every request whose path is not /c/... (a client's own API paths).
function Server:set_case(case, id, args)
  local a = { case = case, id = id }
  for k, v in pairs(args or {}) do a[k] = v end
  local status, body = self.nginx:request("/_set" .. query(a))
  assert(status == 200, "hostile: /_set failed: " .. tostring(body))
end

-- What the server did for id: requests (count), sent (bytes the client accepted),
-- closed (the client left before the case ended), finished (the case played to its
-- end), head (the last request head received), case.
function Server:seen(id)
  local status, body = self.nginx:request("/_seen?id=" .. id)
  assert(status == 200, "hostile: /_seen failed: " .. tostring(body))
  return fakeorg.decode(body)
end

-- Polls seen(id) until pred(seen) holds or `max_wait` seconds (default 10) pass; returns
-- the last record. For the server's view of a close, which it notices on its next write.
function Server:wait_seen(id, pred, max_wait)
  local s
  for _ = 1, math.floor((max_wait or 10) / 0.05) do
    s = self:seen(id)
    if pred(s) then return s end
    nginx.run("sleep 0.05")
  end
  return s
end

function Server:error_log()
  return self.nginx:error_log()
end

function Server:stop()
  self.nginx:stop()
end

---------------------------------------------------------------------------
-- the runner: sfreports inside nginx (the cosocket engine), driven by hostile_probe.lua

local RUNNER_HTTP = [[
    client_body_buffer_size 1m;
    lua_socket_log_errors off;
]]
local RUNNER_SERVER = [[
        location = /run { content_by_lua_block { require("hostile_probe").run() } }
        location / { return 200 "runner\n"; }
]]

local Runner = {}
Runner.__index = Runner

-- Starts an nginx whose /run executes sfreports calls (see hostile_probe.lua); builds
-- the C core for nginx's LuaJIT first.
function hostile.start_runner()
  local srv = nginx.start_sfreports({ http = RUNNER_HTTP, server = RUNNER_SERVER })
  return setmetatable({ nginx = srv, url = srv.url }, Runner)
end

-- Runs q inside nginx; returns the decoded answer (raises with the error log otherwise).
function Runner:run(q)
  local body = fakeorg.encode(q)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(body)
  f:close()
  local status, out = self.nginx:request("/run", { method = "POST", max_time = 120,
    extra = "-H 'Content-Type: application/json' --data-binary @" .. fakeorg.shell_quote(tmp) })
  os.remove(tmp)
  if status ~= 200 then
    error(("hostile runner: status %s: %s\n%s"):format(tostring(status), out, self.nginx:error_log()), 2)
  end
  return fakeorg.decode(out)
end

function Runner:error_log()
  return self.nginx:error_log()
end

function Runner:stop()
  self.nginx:stop()
end

return hostile
