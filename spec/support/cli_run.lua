-- spec/support/cli_run.lua: runs the command line for the specs, from any checkout path.
--   local cli_run = require "cli_run"
--   local sfr = cli_run.new()            -- in setup(): sfr:use_org(org, "name"), or set
--                                        --   sfr.dir (a scratch folder) and sfr.env
--   sfr:run(args, o)   -- bin/sfreports (a child process) to its end: { out =, err =, code = }
--   sfr:spawn(args, o) -- in the background: a file base (base .. ".pid" holds its pid,
--                      --   base .. ".rc" its exit status once it ended); sfr:result(base)
--   cli_run.buffer()   -- a stream for sfreports.cli.main in process (b.text: what it got)
--   cli_run.leftovers(dir), cli_run.write_file(path, s)
-- o: env (the variables; default sfr.env), stdin (text), cwd (default sfr.dir; false:
-- this process's), bin (another launcher), direct (exec the file itself: its shebang),
-- keep_lua_path (LUA_PATH/LUA_CPATH as this process has them; otherwise unset, so that
-- the command finds its modules itself). The child never inherits LUA_INIT, SF_*,
-- SFREPORTS_PROFILE, XDG_CONFIG_HOME or proxy variables: only o.env's.
local fakeorg = require "fakeorg"
local nginx = require "nginx"

local q, read_file = fakeorg.shell_quote, fakeorg.read_file

local cli_run = {}

cli_run.ROOT = nginx.root()
cli_run.BIN = cli_run.ROOT .. "/bin/sfreports"
-- The interpreter running this spec, which runs the command too.
cli_run.LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("(%d+%.%d+)"))

local LUA_PATHS = { "LUA_PATH", "LUA_CPATH", "LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_PATH_5_3", "LUA_CPATH_5_3" }
local UNSET = { "LUA_INIT", "LUA_INIT_5_4", "LUA_INIT_5_3", "SF_INSTANCE_URL", "SF_ACCESS_TOKEN", "SF_API_VERSION",
  "SFREPORTS_PROFILE", "XDG_CONFIG_HOME", "https_proxy", "HTTPS_PROXY", "http_proxy", "all_proxy", "ALL_PROXY",
  "no_proxy", "NO_PROXY" }

-- Writes s into the file at path (raises when it cannot).
local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
cli_run.write_file = write_file

-- The temporary files (sfreports-*) in dir: what a writer that replaces a file whole
-- left behind.
function cli_run.leftovers(dir)
  local p = io.popen("ls -a " .. q(dir))
  local found = {}
  for name in p:lines() do
    if name:find("sfreports%-") then found[#found + 1] = name end
  end
  p:close()
  return found
end

local Runner = {}
Runner.__index = Runner

function cli_run.new()
  return setmetatable({ counter = 0 }, Runner)
end

-- Runs the command against org (its url and token) with org.dir .. "/" .. name as the
-- scratch folder, made here; returns that folder.
function Runner:use_org(org, name)
  self.dir = org.dir .. "/" .. name
  os.execute("mkdir -p " .. q(self.dir))
  self.env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token }
  return self.dir
end

-- A fresh file base in the scratch folder.
function Runner:base(kind)
  self.counter = self.counter + 1
  return self.dir .. "/" .. kind .. self.counter
end

-- The shell command that runs the command with args, its streams in base.*.
function Runner:command(args, o, base)
  local parts = {}
  local cwd = o.cwd == nil and self.dir or o.cwd
  if cwd then parts[#parts + 1] = "cd " .. q(cwd) .. " &&" end
  parts[#parts + 1] = "env"
  if not o.keep_lua_path then
    for _, v in ipairs(LUA_PATHS) do parts[#parts + 1] = "-u " .. v end
  end
  for _, v in ipairs(UNSET) do parts[#parts + 1] = "-u " .. v end
  for k, v in pairs(o.env or self.env) do parts[#parts + 1] = k .. "=" .. q(v) end
  if not o.direct then parts[#parts + 1] = cli_run.LUA end
  parts[#parts + 1] = q(o.bin or cli_run.BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  if o.stdin then
    write_file(base .. ".in", o.stdin)
    parts[#parts + 1] = "<" .. q(base .. ".in")
  else
    parts[#parts + 1] = "</dev/null"
  end
  parts[#parts + 1] = ">" .. q(base .. ".out") .. " 2>" .. q(base .. ".err")
  return table.concat(parts, " ")
end

-- What the command at base left: { out =, err =, code = }; removes its files.
function Runner.result(_, base)
  local res = { out = read_file(base .. ".out") or "", err = read_file(base .. ".err") or "",
    code = tonumber((read_file(base .. ".rc") or ""):match("%d+")) }
  for _, ext in ipairs({ ".out", ".err", ".rc", ".pid", ".in" }) do os.remove(base .. ext) end
  return res
end

function Runner:run(args, o)
  o = o or {}
  local base = self:base("run")
  os.execute(self:command(args, o, base) .. "; echo $? >" .. q(base .. ".rc"))
  return self:result(base)
end

function Runner:spawn(args, o)
  o = o or {}
  local base = self:base("bg")
  os.execute("( " .. self:command(args, o, base) .. " & echo $! >" .. q(base .. ".pid") .. "; wait $!; echo $? >"
    .. q(base .. ".rc.tmp") .. "; mv " .. q(base .. ".rc.tmp") .. " " .. q(base .. ".rc") .. " ) >/dev/null 2>&1 &")
  return base
end

-- Temporary files (sfreports-*) left in the scratch folder.
function Runner:leftovers()
  return cli_run.leftovers(self.dir)
end

-- A stream for cli.main's stdout/stderr: keeps what is written in b.text.
function cli_run.buffer()
  local b = { text = "" }
  function b:write(...)
    for i = 1, select("#", ...) do self.text = self.text .. select(i, ...) end
    return self
  end
  function b:flush() return self end
  return b
end

return cli_run
