-- bench/driver.lua: what the two bench drivers share (bench/suite.lua, bench/compare.lua;
-- the contender scripts use bench/common.lua): shell helpers, the printed output kept for
-- --markdown, medians, the fake org with its environment file, and measure().
--   local driver = dofile(here .. "/driver.lua")   -- after spec/support is on package.path
local fakeorg = require "fakeorg"

local format, concat, sort = string.format, table.concat, table.sort
local q, read_file = fakeorg.shell_quote, fakeorg.read_file

local driver = {}

-- Runs a shell command: its standard output, and whether it exited 0.
function driver.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local s = p:read("*a")
  local ok, _, code = p:close()
  return s, ok == true or code == 0
end

-- dir as an absolute path, so that the contenders find their files whatever their
-- working directory; raises when there is no such directory.
function driver.absolute(dir)
  local d = driver.sh("cd " .. q(dir) .. " 2>/dev/null && pwd"):match("[^\n]+")
  return assert(d, "bench: no such directory " .. dir)
end

-- Output: printed at once, and kept for driver.write_markdown.
driver.lines = {}
function driver.out(s)
  s = s or ""
  print(s)
  io.stdout:flush()
  driver.lines[#driver.lines + 1] = s
end

-- Writes everything driver.out printed into the file at path.
function driver.write_markdown(path)
  local f = assert(io.open(path, "w"))
  f:write(concat(driver.lines, "\n"), "\n")
  f:close()
end

-- The header and separator lines of a Markdown table (first column left-aligned, the
-- others right-aligned), printed with driver.out.
function driver.table_head(head)
  driver.out("| " .. concat(head, " | ") .. " |")
  local sep = {}
  for i = 1, #head do sep[i] = i == 1 and "---" or "---:" end
  driver.out("|" .. concat(sep, "|") .. "|")
end

function driver.table_row(row)
  driver.out("| " .. concat(row, " | ") .. " |")
end

-- The median of the numbers in t (nil for none).
function driver.median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Starts the fake org and writes the environment every measured command starts with
-- (the org's URL and token from a file, never on a command line; no proxy). extra:
-- { NAME = value } more variables. Sets and returns driver.ORG, driver.TMP (the org's
-- folder) and driver.ENVFILE.
function driver.start_org(extra)
  local org = fakeorg.start({})
  driver.ORG, driver.TMP = org, org.dir
  driver.ENVFILE = org.dir .. "/bench.env"
  local f = assert(io.open(driver.ENVFILE, "w"))
  -- every request stays on loopback: no proxy may take it elsewhere
  f:write("unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy\n")
  f:write("NO_PROXY=127.0.0.1,localhost\n")
  f:write("SF_INSTANCE_URL=", q(org.url), "\n")
  f:write("SF_ACCESS_TOKEN=", q(org.token), "\n")
  for k, v in pairs(extra or {}) do f:write(k, "=", q(v), "\n") end
  f:close()
  return driver.ORG, driver.TMP, driver.ENVFILE
end

-- Runs `cmd` (a shell command line; env: "NAME=value ..." put before it) with the bench
-- environment. Wall and CPU time come from bash's `time` (millisecond resolution; CPU =
-- user + system of every process the command waited for), the peak RSS from GNU time's
-- %M (KB). Returns { wall, cpu, rss_kb, code, fields = { key = value from "bench key
-- value" lines on stderr }, stderr }. Raises unless the exit status is 0 or in
-- allowed_codes.
function driver.measure(cmd, env, allowed_codes)
  if env then cmd = "env " .. env .. " " .. cmd end
  local TMP = driver.TMP
  local tfile, rfile, efile = TMP .. "/time.out", TMP .. "/rss.out", TMP .. "/stderr.out"
  os.remove(tfile); os.remove(rfile)
  local inner = format("TIMEFORMAT='%%3R %%3U %%3S'; { time /usr/bin/time -f %%M -o %s %s >/dev/null 2>%s; } 2>%s",
    q(rfile), cmd, q(efile), q(tfile))
  local ok, _, code = os.execute(format("set -a; . %s; set +a; exec bash -c %s", q(driver.ENVFILE), q(inner)))
  local status = (ok == true or ok == 0) and 0 or code
  local err = read_file(efile) or ""
  local e, u, s = (read_file(tfile) or ""):match("([%d.]+) ([%d.]+) ([%d.]+)")
  local m = (read_file(rfile) or ""):match("(%d+)%s*$")
  if not (e and m) or not (status == 0 or (allowed_codes and allowed_codes[status])) then
    error(format("bench: command failed (status %s): %s\n%s", tostring(status), cmd, err), 0)
  end
  local fields = {}
  for k, v in err:gmatch("bench (%S+) (%S+)") do fields[k] = tonumber(v) or v end
  return { wall = tonumber(e), cpu = tonumber(u) + tonumber(s), rss_kb = tonumber(m),
           code = status, fields = fields, stderr = err }
end

return driver
