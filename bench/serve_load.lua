-- luacheck: globals ngx
-- bench/serve_load.lua: a small HTTP/1.1 load generator that runs inside its own nginx
-- (cosockets, keep-alive), used by the `serve` scenario of bench/suite.lua: no load tool
-- beyond Debian's nginx and its Lua module is needed.
--   location = /load { content_by_lua_block { require("serve_load").run() } }
--   GET /load?port=P&path=/x&n=2000&c=8 -> {"requests":n,"seconds":s,"rps":r,"bytes":b,"errors":e}
-- c connections each send GET path over and over (keep-alive, one request in flight per
-- connection) until n requests have been answered; a body is read by its Content-Length.


local M = {}

local function one_connection(port, path, budget, stats)
  local sock = ngx.socket.tcp()
  sock:settimeouts(5000, 5000, 30000)
  local ok, err = sock:connect("127.0.0.1", port)
  if not ok then
    stats.errors = stats.errors + 1
    stats.last_error = err
    return
  end
  local req = "GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: serve_load\r\n\r\n"
  while budget.left > 0 do
    budget.left = budget.left - 1
    local sent, serr = sock:send(req)
    if not sent then
      stats.errors, stats.last_error = stats.errors + 1, serr
      return
    end
    local status_line, rerr = sock:receive("*l")
    if not status_line then
      stats.errors, stats.last_error = stats.errors + 1, rerr
      return
    end
    local length
    while true do
      local line = sock:receive("*l")
      if not line then
        stats.errors = stats.errors + 1
        return
      end
      if line == "" then break end
      local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if v then length = tonumber(v) end
    end
    if not length then
      stats.errors, stats.last_error = stats.errors + 1, "no Content-Length"
      return
    end
    -- the body is read in pieces and dropped: the loader should cost little per byte
    local left = length
    while left > 0 do
      local piece = sock:receiveany(left < 262144 and left or 262144)
      if not piece then
        stats.errors = stats.errors + 1
        return
      end
      left = left - #piece
    end
    if status_line:find(" 200 ", 1, true) then
      stats.requests = stats.requests + 1
      stats.bytes = stats.bytes + length
    else
      stats.errors, stats.last_error = stats.errors + 1, status_line
    end
  end
  sock:setkeepalive()
end

function M.run()
  local args = ngx.req.get_uri_args()
  local port, path = tonumber(args.port), args.path
  local n, c = tonumber(args.n) or 1000, tonumber(args.c) or 8
  local stats = { requests = 0, bytes = 0, errors = 0 }
  local budget = { left = n }
  ngx.update_time()
  local t0 = ngx.now()
  local threads = {}
  for i = 1, c do threads[i] = ngx.thread.spawn(one_connection, port, path, budget, stats) end
  for i = 1, c do ngx.thread.wait(threads[i]) end
  ngx.update_time()
  local seconds = ngx.now() - t0
  ngx.header["Content-Type"] = "application/json"
  ngx.say(require("cjson").encode({ requests = stats.requests, seconds = seconds, bytes = stats.bytes,
    rps = stats.requests / seconds, errors = stats.errors, last_error = stats.last_error }))
end

return M
