-- spec/support/nginx.lua: start a real nginx (with the Lua module) on loopback from a
-- config template, for the specs that run sfreports inside nginx.
--   local nginx = require "nginx"
--   local srv = nginx.start{ template = "examples/nginx/nginx.conf", vars = {...}, env = {...} }
--   srv.url, srv.port, srv.dir; srv:get(path) ; srv:error_log(); srv:stop()
-- Placeholders are {{NAME}}; PORT and PREFIX are filled here, every other one must be
-- given in vars (an unfilled placeholder is an error, not a silent blank). The port is
-- random and retried when taken, since other specs run nginx servers concurrently.
local fakeorg = require "fakeorg"

local shell_quote = fakeorg.shell_quote

local nginx = {}

-- Runs a shell command: output, success. The exit status is echoed by the shell because
-- Lua 5.1's popen close does not report it.
local function run(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n} ; echo \"::rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("::rc=(%d+)%s*$"))
  return (out:gsub("::rc=%d+%s*$", "")), rc == 0
end
nginx.run = run

-- The checkout root (this file is spec/support/nginx.lua).
function nginx.root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/spec/support/[^/]*$")
  if not dir or dir == "" then dir = "." end
  if dir:sub(1, 1) ~= "/" then
    dir = run("cd " .. shell_quote(dir) .. " && pwd"):gsub("%s+$", "")
  end
  return dir
end

local read_file = fakeorg.read_file

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  f:close()
end

-- Replaces every {{NAME}} with vars.NAME; raises on a placeholder without a value.
function nginx.render(template, vars)
  return (template:gsub("{{([%w_]+)}}", function(name)
    local v = vars[name]
    if v == nil then error("nginx.render: no value for {{" .. name .. "}}", 3) end
    return tostring(v)
  end))
end

-- Builds the C core for nginx's LuaJIT if needed (the example loads build/luajit).
function nginx.build_luajit_core(root)
  local out, ok = run("make -s -C " .. shell_quote(root) .. " LUA=luajit all 2>&1")
  if not ok then error("building the C core for LuaJIT failed:\n" .. out, 2) end
  return root .. "/build/luajit/sfreports/core.so"
end

local Server = {}
Server.__index = Server

-- The lua_package_path of a spec's nginx that runs sfreports: the checkout's lua/ and
-- spec/support/ ({{ROOT}} is the checkout root).
nginx.LUA_PATH = "{{ROOT}}/lua/?.lua;{{ROOT}}/lua/?/init.lua;{{ROOT}}/spec/support/?.lua"

-- The text of a spec's own nginx config (a template for nginx.start): the Lua module, one
-- worker, pid and error log in the prefix, one server on 127.0.0.1:{{PORT}}.
-- opts: workers (worker_processes, default 1); listen (parameters after the listen
-- address, e.g. "backlog=1024"); connections (worker_connections, default 256); env
-- (names of variables the workers may read); access_log (default "off"); temp_paths
-- (true: the proxy, fastcgi, uwsgi and scgi temp paths in the prefix too); lua_path
-- (lua_package_path before ";;"); luajit_core (true: lua_package_cpath is
-- {{ROOT}}/build/luajit); http (more lines of the http block); server (the server's lines
-- after `listen`).
function nginx.conf(opts)
  local lines = {
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
    ("worker_processes %d;"):format(opts.workers or 1),
    "daemon on;",
    "pid {{PREFIX}}/nginx.pid;",
    "error_log {{PREFIX}}/error.log warn;",
  }
  local function add(line) lines[#lines + 1] = line end
  for _, name in ipairs(opts.env or {}) do add("env " .. name .. ";") end
  add(("events { worker_connections %d; }"):format(opts.connections or 256))
  add("http {")
  add("    access_log " .. (opts.access_log or "off") .. ";")
  add("    client_body_temp_path {{PREFIX}}/tmp/body;")
  if opts.temp_paths then
    for _, kind in ipairs({ "proxy", "fastcgi", "uwsgi", "scgi" }) do
      add(("    %s_temp_path {{PREFIX}}/tmp/%s;"):format(kind, kind))
    end
  end
  if opts.lua_path then add('    lua_package_path "' .. opts.lua_path .. ';;";') end
  if opts.luajit_core then add('    lua_package_cpath "{{ROOT}}/build/luajit/?.so;;";') end
  if opts.http then add((opts.http:gsub("\n$", ""))) end
  add("    server {")
  add("        listen 127.0.0.1:{{PORT}}" .. (opts.listen and " " .. opts.listen or "") .. ";")
  if opts.server then add((opts.server:gsub("\n$", ""))) end
  add("    }")
  add("}")
  return table.concat(lines, "\n") .. "\n"
end

local function random_port()
  local f = assert(io.open("/dev/urandom", "rb"))
  local b = f:read(2)
  f:close()
  return 20000 + (b:byte(1) * 256 + b:byte(2)) % 40000
end

-- The `user` line for a config nginx starts as root, or "" for any other user. A master
-- started as root switches its workers to `nobody`, who cannot read a checkout under
-- /root (mode 700): the workers then run as the user that started nginx, as they do
-- when a normal user starts it (nginx ignores `user` then, with a warning on stderr).
function nginx.user_directive()
  local id = run("id -u; id -un; id -gn")
  local uid, name, group = id:match("^(%d+)%s+(%S+)%s+(%S+)")
  if uid ~= "0" then return "" end
  return ("user %s %s;"):format(name, group)
end

-- Puts the user_directive() line first in conf unless conf sets `user` itself.
local function with_user(conf)
  if conf:find("^%s*user%s") or conf:find("\n%s*user%s") then return conf end
  local line = nginx.user_directive()
  if line == "" then return conf end
  return line .. "\n" .. conf
end

-- The environment nginx starts with: the caller's, without the Lua search paths. `;;` in
-- lua_package_path/cpath means LuaJIT's default path, which LUA_PATH/LUA_CPATH replace:
-- inherited from a spec run (LUA_CPATH=build/lua5.4/?.so) they would make a worker that
-- cannot load build/luajit fall back to the Lua 5.4 build ("undefined symbol:
-- lua_rotate") instead of failing with a clear "module not found".
local CLEAN_ENV = "env -u LUA_PATH -u LUA_CPATH -u LUA_INIT"

-- opts: template (path) or conf (text); vars; env (table of variables for the master);
-- files ({ name = content }, written into the prefix before nginx starts).
function nginx.start(opts)
  local template = opts.conf or assert(read_file(opts.template), "cannot read " .. tostring(opts.template))
  template = with_user(template)
  local dir = run("mktemp -d /tmp/sfreports-nginx.XXXXXX"):gsub("%s+$", "")
  run("chmod 0755 " .. shell_quote(dir) .. " && mkdir -p " .. shell_quote(dir .. "/tmp"))
  local env = { CLEAN_ENV }
  for k, v in pairs(opts.env or {}) do
    env[#env + 1] = k .. "=" .. shell_quote(v)
  end
  local envs = table.concat(env, " ")
  -- files the workers read, written into the prefix
  for name, content in pairs(opts.files or {}) do
    write_file(dir .. "/" .. name, content)
    run("chmod 0644 " .. shell_quote(dir .. "/" .. name))
  end
  for _ = 1, 20 do
    local port = random_port()
    local vars = { PORT = port, PREFIX = dir }
    for k, v in pairs(opts.vars or {}) do vars[k] = v end
    local ok_render, conf = pcall(nginx.render, template, vars)
    if not ok_render then
      run("rm -rf " .. shell_quote(dir))
      error(conf, 2)
    end
    write_file(dir .. "/nginx.conf", conf)
    write_file(dir .. "/error.log", "")
    local cmd = ("%s nginx -p %s -c %s -e %s 2>&1"):format(envs, shell_quote(dir),
      shell_quote(dir .. "/nginx.conf"), shell_quote(dir .. "/error.log"))
    local out, ok = run(cmd)
    if ok then
      local srv = setmetatable({ dir = dir, port = port, url = "http://127.0.0.1:" .. port }, Server)
      for _ = 1, 40 do
        local _, up = run("curl -s -o /dev/null --max-time 0.25 " .. shell_quote(srv.url .. "/"))
        if up then return srv end
        if read_file(dir .. "/error.log"):find("[emerg]", 1, true) then break end
        run("sleep 0.05")
      end
      local diag = run("curl -sv --max-time 1 " .. shell_quote(srv.url .. "/") .. " 2>&1")
      local log = read_file(dir .. "/error.log") or ""
      srv:stop()
      error("nginx did not answer on " .. srv.url .. ":\n" .. log .. diag, 2)
    end
    local log = (read_file(dir .. "/error.log") or "") .. out
    if not log:find("in use", 1, true) then
      run("rm -rf " .. shell_quote(dir))
      error("nginx failed to start:\n" .. log, 2)
    end
  end
  error("nginx: no free port found", 2)
end

-- Starts a spec's own nginx that runs sfreports (cosockets): builds the C core for
-- nginx's LuaJIT, then starts nginx.conf(opts) with lua_path (default nginx.LUA_PATH) and
-- the LuaJIT core; vars gets ROOT (the checkout). opts.org: a fake org whose url and token
-- the workers read as SF_INSTANCE_URL and SF_ACCESS_TOKEN. opts.vars, opts.files: as for
-- nginx.start; connections, access_log, temp_paths, http, server: as for nginx.conf.
function nginx.start_sfreports(opts)
  local root = nginx.root()
  nginx.build_luajit_core(root)
  local org = opts.org
  local vars = { ROOT = root }
  for k, v in pairs(opts.vars or {}) do vars[k] = v end
  local conf = nginx.conf({
    env = org and { "SF_INSTANCE_URL", "SF_ACCESS_TOKEN" } or nil,
    connections = opts.connections, access_log = opts.access_log, temp_paths = opts.temp_paths,
    lua_path = opts.lua_path or nginx.LUA_PATH, luajit_core = true, http = opts.http, server = opts.server,
  })
  return nginx.start({ conf = conf, vars = vars, files = opts.files,
    env = org and { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token } or nil })
end

-- Starts the example of examples/nginx (nginx.conf and its handlers) on the C core built
-- for LuaJIT, its workers reading org's url and token as SF_INSTANCE_URL/SF_ACCESS_TOKEN.
function nginx.start_example(org)
  local root = nginx.root()
  nginx.build_luajit_core(root)
  return nginx.start({ template = root .. "/examples/nginx/nginx.conf",
    env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token },
    vars = { SFREPORTS = root, CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt" } })
end

function Server:error_log()
  return read_file(self.dir .. "/error.log") or ""
end

-- GET (or opts.method) path; returns status, body, headers (lower-case names).
function Server:request(path, opts)
  opts = opts or {}
  local body_file, head_file = self.dir .. "/resp.body", self.dir .. "/resp.head"
  local cmd = ("curl -s -X %s -o %s -D %s --max-time %d %s %s"):format(opts.method or "GET",
    shell_quote(body_file), shell_quote(head_file), opts.max_time or 60,
    opts.extra or "", shell_quote(self.url .. path))
  run(cmd)
  local head = read_file(head_file) or ""
  local status = tonumber(head:match("^HTTP/%S+ (%d+)"))
  local headers = {}
  for name, value in head:gmatch("([%w%-]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  return status, read_file(body_file) or "", headers
end

-- Stops nginx without waiting: a graceful stop takes about a second here, so a
-- background shell waits for the master to exit and then removes the prefix.
function Server:stop()
  local pid = read_file(self.dir .. "/nginx.pid")
  pid = pid and tonumber(pid:match("%d+"))
  local dir = shell_quote(self.dir)
  if not pid then
    run("rm -rf " .. dir)
    return
  end
  run(("kill -QUIT %d 2>/dev/null; ( i=0; while kill -0 %d 2>/dev/null && [ $i -lt 200 ]; do "
    .. "i=$((i+1)); sleep 0.05; done; kill -0 %d 2>/dev/null && kill -KILL %d; rm -rf %s ) "
    .. ">/dev/null 2>&1 &"):format(pid, pid, pid, pid, dir))
end

-- A setup function that runs start() and, when that raises, stop() before the error goes
-- on: busted skips teardown when setup fails, and whatever did start must not keep
-- running. stop must cope with whatever start left unstarted (nil).
--   setup(nginx.guarded(start, stop)); teardown(stop)
function nginx.guarded(start, stop)
  return function()
    local ok, err = pcall(start)
    if not ok then
      stop()
      error(err, 0)
    end
  end
end

-- Stops fake orgs (spec/support/fakeorg.lua) in the background, in parallel: each
-- graceful stop takes a second or more, and nothing waits for them.
function nginx.stop_orgs(orgs)
  local script = {}
  for _, org in ipairs(orgs) do
    script[#script + 1] = ("( %s stop %s; rm -rf %s ) >/dev/null 2>&1 &"):format(
      shell_quote(nginx.root() .. "/fakeorg/fakeorg"), shell_quote(org.dir), shell_quote(org.dir))
  end
  run(table.concat(script, "\n"))
end

return nginx
