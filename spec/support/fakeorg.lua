-- spec/support/fakeorg.lua: start/stop the fake org (fakeorg/fakeorg) from busted specs
-- and talk to its /__fake/ control API with the curl command-line tool.
--   local fakeorg = require "fakeorg"
--   local org = fakeorg.start{ tls = false }   -- in setup()
--   org.url, org.token, org.dir; org:control("config", { async_delay = 0 }); org:stats()
--   org:bodies()  -- the requests (method, uri, body text) the org saw, oldest first
--   org:stop()                                  -- in teardown()
local ok_cjson, cjson = pcall(require, "cjson")
local json = ok_cjson and cjson or require "dkjson"

local fakeorg = {}

fakeorg.TOKEN = "00DFAKE!fake-access-token"

-- The saved reports of the fake org (see fakeorg/README.md).
fakeorg.reports = {
  tabular_small = { id = "00OFk00000A0001MAB", format = "TABULAR", rows = 40 },
  tabular_wide = { id = "00OFk00000A0002MAB", format = "TABULAR", rows = 2000 },
  tabular_5k = { id = "00OFk00000A0003MAB", format = "TABULAR", rows = 5000 },
  tabular_20k = { id = "00OFk00000A0004MAB", format = "TABULAR", rows = 20000 },
  tabular_100k = { id = "00OFk00000A0005MAB", format = "TABULAR", rows = 100000 },
  summary_1 = { id = "00OFk00000B0001MAB", format = "SUMMARY", rows = 120 },
  summary_3 = { id = "00OFk00000B0002MAB", format = "SUMMARY", rows = 1500 },
  summary_5k = { id = "00OFk00000B0003MAB", format = "SUMMARY", rows = 5000 },
  matrix = { id = "00OFk00000C0001MAB", format = "MATRIX", rows = 600 },
  joined = { id = "00OFk00000D0001MAB", format = "MULTI_BLOCK", rows = 300 },
  slow = { id = "00OFk00000E0001MAB", format = "TABULAR", rows = 25 },
  async_error = { id = "00OFk00000E0002MAB", format = "TABULAR", rows = 25 },
  never_done = { id = "00OFk00000E0003MAB", format = "TABULAR", rows = 25 },
  filtered = { id = "00OFk00000F0001MAB", format = "TABULAR", rows = 600 },
}

-- Directory of this file, so the script is found from any working directory.
local function here()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return src:match("^(.*)/[^/]*$") or "."
end

local SCRIPT = here() .. "/../../fakeorg/fakeorg"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
fakeorg.shell_quote = shell_quote

-- Runs a shell command: its stdout and whether it exited 0. The exit status is printed
-- by the shell itself, because io.popen's close() does not report it on Lua 5.1/LuaJIT.
local function run(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n}; echo \"__exit=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local status = out:match("__exit=(%d+)%s*$")
  out = out:gsub("__exit=%d+%s*$", "")
  return out, status == "0"
end
fakeorg.run = run

-- The whole content of a file, or nil when it cannot be opened.
function fakeorg.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function fakeorg.decode(s)
  if ok_cjson then return cjson.decode(s) end
  return (json.decode(s))
end

function fakeorg.encode(v)
  return json.encode(v)
end

local Org = {}
Org.__index = Org

-- opts: tls (bool), workers (n), token (string).
function fakeorg.start(opts)
  opts = opts or {}
  local dir = run("mktemp -d /tmp/fakeorg.XXXXXX"):gsub("%s+$", "")
  local args = { shell_quote(SCRIPT), "start", shell_quote(dir) }
  if opts.tls then args[#args + 1] = "--tls" end
  if opts.workers then args[#args + 1] = "--workers " .. tonumber(opts.workers) end
  if opts.token then args[#args + 1] = "--token " .. shell_quote(opts.token) end
  local out, ok = run(table.concat(args, " ") .. " 2>&1")
  local url = out:match("(https?://127%.0%.0%.1:%d+)%s*$")
  if not ok or not url then error("fakeorg: start failed: " .. out, 2) end
  local org = setmetatable({ url = url, dir = dir, token = opts.token or fakeorg.TOKEN,
    tls = opts.tls == true, cafile = opts.tls and (dir .. "/cert.pem") or nil }, Org)
  return org
end

function Org:stop()
  run(shell_quote(SCRIPT) .. " stop " .. shell_quote(self.dir) .. " 2>&1")
  run("rm -rf " .. shell_quote(self.dir))
end

-- Base of the Analytics API for a version (default 60.0).
function Org:api(version)
  return self.url .. "/services/data/v" .. (version or "60.0") .. "/analytics"
end

-- curl arguments every request to the org needs (TLS trust).
function Org:curl_base()
  local base = "curl -s"
  if self.cafile then base = base .. " --cacert " .. shell_quote(self.cafile) end
  return base
end

-- POST JSON to /__fake/<path>; returns the decoded answer.
function Org:control(path, body)
  path = path:gsub("^/?__fake/", ""):gsub("^/", "")
  local payload = body and fakeorg.encode(body) or "{}"
  local cmd = ("%s -X POST -H 'Content-Type: application/json' --data-binary %s %s"):format(
    self:curl_base(), shell_quote(payload), shell_quote(self.url .. "/__fake/" .. path))
  local out = run(cmd)
  return fakeorg.decode(out)
end

function Org:stats()
  return fakeorg.decode(run(self:curl_base() .. " " .. shell_quote(self.url .. "/__fake/stats")))
end

-- The API requests the org saw, oldest first: { {n, method, uri, body = text or null}, ... }
-- (the last 200; a reset clears them).
function Org:bodies()
  return fakeorg.decode(run(self:curl_base() .. " " .. shell_quote(self.url .. "/__fake/bodies")))
end

function Org:reset()
  return self:control("reset")
end

return fakeorg
