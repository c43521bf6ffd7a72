-- bench/serve_bench.lua: the `serve` scenario of bench/suite.lua (issue 20). Requests per
-- second that ONE nginx worker answers for a 2,000-row report (tabular_wide, 25 columns)
-- as CSV: from the sfreports.serve cache, from a static file holding the same bytes
-- (nginx's own file serving, sendfile on), and from the same handler without the cache
-- (run_sync + the CSV writer on every request). The load comes from a second nginx
-- (bench/serve_load.lua: keep-alive HTTP/1.1 over cosockets, C connections), so no load
-- tool beyond Debian's nginx is needed; the two share the machine's cores.
local nginx = require "nginx"
local fakeorg = require "fakeorg"

local format = string.format

local M = {}

local SERVER = nginx.conf({
  env = { "SF_INSTANCE_URL", "SF_ACCESS_TOKEN" }, connections = 1024, listen = "backlog=1024",
  lua_path = "{{ROOT}}/lua/?.lua;{{ROOT}}/lua/?/init.lua", luajit_core = true,
  http = [[
    sendfile on;
    keepalive_requests 1000000;
    lua_shared_dict sfreports 64m;
    init_by_lua_block { require "sfreports"; require "sfreports.serve"; require "sfreports.writers" }
]],
  server = [[
        location = /static/report.csv { alias {{PREFIX}}/report.csv; default_type "text/csv; charset=utf-8"; }
        location ~ ^/cached/(?<report_id>\w+)\.csv$ {
            content_by_lua_block {
                require("sfreports.serve").report(ngx.var.report_id, { max_age = 3600 })
            }
        }
        location ~ ^/nocache/(?<report_id>\w+)\.csv$ {
            content_by_lua_block {
                local c = assert(require("sfreports").from_env())
                local r = assert(c:run_sync(ngx.var.report_id))
                local parts = {}
                assert(require("sfreports.writers").csv(r, function(s) parts[#parts + 1] = s return true end))
                c:close()
                local body = table.concat(parts)
                ngx.header["Content-Type"] = "text/csv; charset=utf-8"
                ngx.header["Content-Length"] = #body
                ngx.print(body)
            }
        }
]],
})

local LOADER = nginx.conf({
  connections = 1024, lua_path = "{{HERE}}/?.lua",
  server = [[
        location = /load { content_by_lua_block { require("serve_load").run() } }
]],
})

-- CPU seconds (user + system) the worker processes of a server have used so far.
local function worker_cpu(srv)
  local master = fakeorg.read_file(srv.dir .. "/nginx.pid"):match("%d+")
  local total = 0
  for pid in nginx.run("pgrep -P " .. master):gmatch("%d+") do
    local stat = fakeorg.read_file("/proc/" .. pid .. "/stat") or ""
    local rest = stat:match("%) (.*)$") or ""
    local fields = {}
    for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
    -- after "pid (comm)": field 3 is state, utime and stime are fields 14 and 15 overall
    total = total + (tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)
  end
  return total / 100 -- clock ticks (USER_HZ = 100)
end

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  if n % 2 == 1 then return c[(n + 1) / 2] end
  return (c[n / 2] + c[n / 2 + 1]) / 2
end

-- env: out, table_md, check, org, root, here, reps, quick
function M.run(env)
  local root, here = env.root, env.here
  if here:sub(1, 1) ~= "/" then here = root .. "/bench" end
  local id = fakeorg.reports.tabular_wide.id
  local srv = nginx.start({ conf = SERVER, vars = { ROOT = root },
    env = { SF_INSTANCE_URL = env.org.url, SF_ACCESS_TOKEN = env.org.token } })
  local loader = nginx.start({ conf = LOADER, vars = { HERE = here } })
  local ok, err = pcall(function()
    -- the static file: the very bytes the cache serves
    local status, body, h = srv:request("/cached/" .. id .. ".csv")
    assert(status == 200 and h["x-cache"] == "MISS", "the cached endpoint did not answer")
    local f = assert(io.open(srv.dir .. "/report.csv", "wb"))
    f:write(body)
    f:close()
    nginx.run("chmod 0644 " .. fakeorg.shell_quote(srv.dir .. "/report.csv"))
    local s2, static = srv:request("/static/report.csv")
    assert(s2 == 200 and static == body, "the static file differs from the cached body")
    local function load(path, n, c)
      local cpu0 = worker_cpu(srv)
      local _, out = loader:request(format("/load?port=%d&path=%s&n=%d&c=%d", srv.port, path, n, c),
        { max_time = 600 })
      local r = fakeorg.decode(out)
      assert(r.errors == 0 and r.requests == n, "load " .. path .. ": " .. out)
      r.cpu_us = (worker_cpu(srv) - cpu0) / n * 1e6
      return r
    end
    local n = env.quick and 500 or 3000
    local nc = env.quick and 10 or 40
    local reps = env.quick and 2 or math.max(3, math.min(env.reps, 5))
    load("/static/report.csv", 200, 8) -- warm-up
    load("/cached/" .. id .. ".csv", 200, 8)
    load("/nocache/" .. id .. ".csv", 4, 2)
    local runs_before = env.org:stats().sync_runs
    local rps = { static = {}, cached = {}, nocache = {} }
    local cpu = { static = {}, cached = {}, nocache = {} }
    local function one(name, path, count, conns)
      local r = load(path, count, conns)
      rps[name][#rps[name] + 1], cpu[name][#cpu[name] + 1] = r.rps, r.cpu_us
    end
    for _ = 1, reps do
      one("static", "/static/report.csv", n, 8)
      one("cached", "/cached/" .. id .. ".csv", n, 8)
      one("nocache", "/nocache/" .. id .. ".csv", nc, 4)
    end
    local runs = env.org:stats().sync_runs - runs_before
    local st, ca, no = median(rps.static), median(rps.cached), median(rps.nocache)
    env.out("### serve: a cached report endpoint in nginx (one worker)")
    env.out()
    env.out(format("tabular 2,000 × 25 as CSV (%d bytes). One nginx worker serves; a second nginx "
      .. "(bench/serve_load.lua, cosockets, keep-alive, 8 connections; 4 without the cache) sends %d requests per "
      .. "run (%d without the cache); medians of %d interleaved runs after a warm-up. The report ran %d times "
      .. "during the measured runs, all of them without the cache.", #body, n, nc, reps, runs))
    env.out()
    local cs, cc, cn = median(cpu.static), median(cpu.cached), median(cpu.nocache)
    env.table_md({ "endpoint", "requests/s", "vs static file", "serving worker CPU µs/request" }, {
      { "static file (nginx, sendfile)", format("%.0f", st), "1.00×", format("%.0f", cs) },
      { "sfreports.serve, cached", format("%.0f", ca), format("%.2f×", ca / st), format("%.0f", cc) },
      { "same handler without the cache", format("%.1f", no), format("%.3f×", no / st), format("%.0f", cn) },
    })
    env.out()
    env.out("requests/s is bounded by the loader and the loopback copy of 0.6 MB per answer as much as by the "
      .. "server: the serving worker's CPU per request (from /proc, 10 ms ticks over the whole run) shows "
      .. "what each answer costs nginx itself.")
    env.out()
    env.check("serve", "cached ≥ 0.7× the static file's requests/s (shown: static / cached ≤ 1.43)",
      st / ca, 1 / 0.7)
    env.results = { static = st, cached = ca, nocache = no, bytes = #body, runs = runs,
      cpu = { static = cs, cached = cc, nocache = cn } }
  end)
  srv:stop()
  loader:stop()
  if not ok then error(err, 0) end
  return env.results
end

return M
