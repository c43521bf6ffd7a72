-- bench/suite.lua: the benchmark suite (run by `make bench` through bench/run.sh, which
-- builds both runtimes and installs jsforce first). Every contender runs as its own
-- process against the fake org (a real nginx server on loopback), interleaved
-- (A B C A B C ...) after one warm-up run of each, and the suite prints medians and the
-- ratios between contenders as Markdown tables, then the targets and whether each is met.
--
--   lua5.4 bench/suite.lua [--reps N] [--quick] [--only sync,many,keepalive,hook,paging,plan,xlsx,serve]
--                          [--delay D] [--markdown FILE]
--
-- What is measured, per run:
--   wall = elapsed time of the process, cpu = user + system time of the process and every
--   child it waited for (bash's `time`, millisecond resolution; it includes the GNU time
--   wrapper, about 1 ms); rss = its peak resident set (GNU time %M, "max RSS").
--   The floor is a pipeline (bench/floor.sh): wall and cpu are the whole pipeline's (bash
--   included), rss is the SUM of the peaks of curl and of lua5.4, each taken by its own
--   GNU time (on a pipeline, max RSS is the largest single process, not the sum).
--   Many: wall is the contender's own clock around the runs (process start-up excluded),
--   polls per instance come from the fake org (GET /__fake/stats instance_polls).
--   Keep-alive: the server counts the connections each contender opened.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/../spec/support/?.lua;" .. package.path

local fakeorg = require "fakeorg"

local format = string.format
local q = fakeorg.shell_quote

local driver = dofile(here .. "/driver.lua")
local sh, absolute, out, median, measure = driver.sh, driver.absolute, driver.out, driver.median, driver.measure

here = absolute(here)
local ROOT = absolute(here .. "/..")

---------------------------------------------------------------------------------------
-- options

local OPT = {
  reps = 21,          -- measured runs per contender, Sync
  ka_reps = 7,        -- Keep-alive
  many_reps = 5,      -- Many
  paging_reps = 5,    -- Paging
  plan_reps = 3,      -- Planned paging
  plan_delay = 0.5,   -- Planned paging: server-side delay D of every sync run (seconds)
  delay = 1,          -- Many: server-side async delay D (seconds)
  many = 100,         -- Many: asynchronous runs
  requests = 1000,    -- Keep-alive: sequential requests
  poll_ms = 500,      -- Many: the jsforce contender's polling interval
  only = nil, markdown = nil,
}

do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--quick" then
      OPT.reps, OPT.ka_reps, OPT.many_reps, OPT.paging_reps, OPT.requests = 3, 1, 1, 1, 200
      OPT.quick = true
      OPT.plan_reps = 1
    elseif a == "--only" then
      i = i + 1
      OPT.only = {}
      for s in arg[i]:gmatch("[^,]+") do OPT.only[s] = true end
    elseif a == "--reps" or a == "--delay" or a == "--markdown" then
      i = i + 1
      local v = arg[i] or error("bench: " .. a .. " needs a value", 0)
      if a == "--markdown" then OPT.markdown = v else OPT[a:sub(3)] = assert(tonumber(v), a) end
    else
      error("bench: unknown argument " .. a .. " (see the header of bench/suite.lua)", 0)
    end
    i = i + 1
  end
end

local function wanted(s) return OPT.only == nil or OPT.only[s] end

---------------------------------------------------------------------------------------
-- output: printed, and kept for --markdown

local function table_md(head, rows)
  driver.table_head(head)
  for _, r in ipairs(rows) do driver.table_row(r) end
  out()
end

---------------------------------------------------------------------------------------
-- processes

local read_file = fakeorg.read_file

local ORG, TMP

-- Peak RSS (KB) recorded by one side of the floor pipeline.
local function side_rss(path)
  local m = (read_file(path) or ""):match("(%d+)%s*$")
  return assert(tonumber(m), "bench: no RSS record in " .. path)
end

-- Runs each contender once (warm-up), then `reps` rounds of all of them in turn.
-- A contender: { name =, run = function() -> sample }; samples land in c.samples.
local function interleave(contenders, reps)
  for _, c in ipairs(contenders) do c.samples = {}; c.run() end
  for _ = 1, reps do
    for _, c in ipairs(contenders) do c.samples[#c.samples + 1] = c.run() end
  end
  for _, c in ipairs(contenders) do
    local med = {}
    for _, k in ipairs({ "wall", "cpu", "rss_kb", "run_wall", "polls_mean", "polls_max",
                         "connections", "requests", "max_concurrent" }) do
      local col = {}
      for _, smp in ipairs(c.samples) do
        if smp[k] then col[#col + 1] = smp[k] end
      end
      med[k] = #col > 0 and median(col) or nil
    end
    c.med = med
  end
end

local function mb(kb) return format("%.1f", kb / 1024) end
local function ms(s) return format("%.0f", s * 1000) end
local function x(r) return r and r == r and format("%.2f×", r) or "–" end

---------------------------------------------------------------------------------------
-- the environment

local RESULTS = {}   -- target checks: { scenario, target, measured, met }
local function check(scenario, target, value, limit, fmt)
  local met = value <= limit
  RESULTS[#RESULTS + 1] = { scenario, target, format(fmt or "%.2f×", value), met and "met" or "**missed**" }
  return met
end

local function machine()
  local cpu = sh("grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'"):gsub("%s+$", "")
  local cores = sh("nproc"):gsub("%s+$", "")
  local mem = sh("awk '/MemTotal/ {printf \"%.0f GB\", $2/1048576}' /proc/meminfo")
  local kernel = sh("uname -sr"):gsub("%s+$", "")
  local function first(cmd) return (sh(cmd .. " 2>&1"):match("[^\n]*")) end
  local js = read_file(ROOT .. "/.cache/bench/node_modules/jsforce/package.json") or ""
  return {
    format("- machine: %s, %s cores, %s RAM, %s", cpu, cores, mem, kernel),
    format("- date: %s", os.date("!%Y-%m-%d %H:%M UTC")),
    format("- runtimes: %s; %s; node %s; jsforce %s", first("lua5.4 -v"):match("^Lua %S+"),
      first("luajit -v"):match("^LuaJIT %S+"),
      first("node --version"), js:match('"version"%s*:%s*"([^"]+)"') or "?"),
    format("- %s; fake org: nginx %s, 2 workers, loopback HTTP/1.1, gzip",
      first("curl --version"):match("^curl %S+ %S+ %S+"), (first("nginx -v"):match("nginx/(%S+)") or "?")),
  }
end

local function setup()
  ORG, TMP = driver.start_org({ BENCH_NODE_MODULES = ROOT .. "/.cache/bench/node_modules" })
  local c = assert(io.open(TMP .. "/curl.cfg", "w"))
  c:write(format('header = "Authorization: Bearer %s"\n', ORG.token))
  c:close()
end

local function api(path) return ORG:api("60.0") .. "/" .. path end

---------------------------------------------------------------------------------------
-- Sync CSV

local function sync_scenario(key, label)
  local rep = fakeorg.reports[key]
  local id = rep.id
  local url = api("reports/" .. id .. "?includeDetails=true")
  local lua, jit = "lua5.4 " .. q(here .. "/sync_lua.lua"), "luajit " .. q(here .. "/sync_lua.lua")

  -- the same work for everyone: sfreports' CSV and jsforce's CSV must be identical
  local a, b = TMP .. "/sfreports.csv", TMP .. "/jsforce.csv"
  measure(q(ROOT .. "/bin/sfreports") .. " run " .. id .. " --format csv -o " .. q(a))
  measure("node " .. q(here .. "/jsforce_sync.js") .. " " .. id .. " " .. q(b))
  local sa, sb = read_file(a), read_file(b)
  local same = sa == sb
  os.remove(a); os.remove(b)

  local contenders = {
    { name = "floor: curl piped into cjson.decode", key = "floor", run = function()
        local m = measure(q(here .. "/floor.sh") .. " " .. q(url) .. " " .. q(TMP .. "/curl.cfg") .. " " .. q(TMP))
        m.rss_kb = side_rss(TMP .. "/floor.curl") + side_rss(TMP .. "/floor.lua")
        return m
      end },
    { name = "sfreports CLI (lua5.4)", key = "cli", run = function()
        return measure(q(ROOT .. "/bin/sfreports") .. " run " .. id .. " --format csv -o /dev/null")
      end },
    { name = "sfreports in-process, lua5.4", key = "lua", run = function() return measure(lua .. " " .. id) end },
    { name = "sfreports in-process, LuaJIT", key = "jit", run = function() return measure(jit .. " " .. id) end },
    { name = "jsforce " .. "(node)", key = "jsforce", run = function()
        return measure("node " .. q(here .. "/jsforce_sync.js") .. " " .. id .. " /dev/null")
      end },
  }
  interleave(contenders, OPT.reps)
  local by = {}
  for _, c in ipairs(contenders) do by[c.key] = c.med end
  local body = sh(format("curl -sS -K %s %s | wc -c", q(TMP .. "/curl.cfg"), q(url)))
  local gz = sh(format("curl -sS -K %s -H 'Accept-Encoding: gzip' %s | wc -c", q(TMP .. "/curl.cfg"), q(url)))
  out(format("### Sync CSV: %s: %d rows; %.2f MB of JSON (%.2f MB gzipped); CSV %.2f MB",
    label, rep.rows, tonumber(body) / 1048576, tonumber(gz) / 1048576, #(sa or "") / 1048576))
  out()
  out(format("Medians of %d interleaved runs after a warm-up. CSV of sfreports and of jsforce %s.",
    OPT.reps, same and "byte-identical" or "DIFFER (check bench/jsforce_sync.js)"))
  out()
  local rows = {}
  for _, c in ipairs(contenders) do
    local m = c.med
    rows[#rows + 1] = { c.name, ms(m.wall), ms(m.cpu), mb(m.rss_kb),
      x(m.wall / by.floor.wall), x(m.wall / by.jsforce.wall), x(m.rss_kb / by.jsforce.rss_kb) }
  end
  table_md({ "contender", "wall ms", "cpu ms", "peak RSS MB", "wall / floor", "wall / jsforce", "RSS / jsforce" }, rows)
  for _, k in ipairs({ "cli", "lua", "jit" }) do
    local m, name = by[k], nil
    for _, c in ipairs(contenders) do if c.key == k then name = c.name end end
    check("Sync " .. label, name .. ": wall ≤ 0.5× jsforce", m.wall / by.jsforce.wall, 0.5)
    check("Sync " .. label, name .. ": wall ≤ 1.3× floor", m.wall / by.floor.wall, 1.3)
    check("Sync " .. label, name .. ": peak RSS ≤ 0.5× jsforce", m.rss_kb / by.jsforce.rss_kb, 0.5)
  end
end

---------------------------------------------------------------------------------------
-- Many: N asynchronous runs with a server-side delay D

local function org_counts()
  local st = ORG:stats()
  local n, sum, most = 0, 0, 0
  for _, p in pairs(st.instance_polls or {}) do
    n, sum = n + 1, sum + p
    if p > most then most = p end
  end
  return { instances = n, polls_mean = n > 0 and sum / n or 0, polls_max = most,
           connections = st.connections, requests = st.requests }
end

local function many_scenario()
  local rep = fakeorg.reports.tabular_small
  local D, N = OPT.delay, OPT.many
  local function prepared(cmd)
    return function()
      ORG:reset()
      ORG:control("config", { async_delay = D })
      local m = measure(cmd)
      local c = org_counts()
      assert(m.fields.failed == 0, "bench: a run failed: " .. m.stderr)
      assert(c.instances == N, "bench: expected " .. N .. " instances, the org saw " .. c.instances)
      m.run_wall = m.fields.run_wall
      for k, v in pairs(c) do m[k] = v end
      return m
    end
  end
  local contenders = {
    { name = "sfreports run_many, lua5.4", key = "lua",
      run = prepared("lua5.4 " .. q(here .. "/many_lua.lua") .. " " .. rep.id .. " " .. N) },
    { name = "sfreports run_many, LuaJIT", key = "jit",
      run = prepared("luajit " .. q(here .. "/many_lua.lua") .. " " .. rep.id .. " " .. N) },
    { name = format("jsforce Promise.all + poll every %d ms", OPT.poll_ms), key = "jsforce",
      run = prepared("node " .. q(here .. "/jsforce_many.js") .. " " .. rep.id .. " " .. N .. " " .. OPT.poll_ms) },
  }
  interleave(contenders, OPT.many_reps)
  ORG:reset()
  out(format("### Many: %d asynchronous runs, server-side delay D = %g s", N, D))
  out()
  out(format("Medians of %d interleaved runs after a warm-up. wall: the contender's own clock around the %d runs;"
    .. " polls: status requests per instance counted by the fake org; connections: TCP connections it saw.",
    OPT.many_reps, N))
  out()
  local rows = {}
  for _, c in ipairs(contenders) do
    local m = c.med
    rows[#rows + 1] = { c.name, format("%.3f", m.run_wall), x(m.run_wall / D), format("%.1f", m.polls_mean),
      format("%d", m.polls_max), format("%d", m.requests), format("%d", m.connections), ms(m.cpu), mb(m.rss_kb) }
  end
  table_md({ "contender", "wall s", "wall / D", "polls / instance", "max polls", "requests", "connections",
             "cpu ms", "peak RSS MB" }, rows)
  for _, c in ipairs(contenders) do
    if c.key ~= "jsforce" then
      check("Many", c.name .. ": wall ≤ 1.3× D", c.med.run_wall / D, 1.3)
    end
  end
end

---------------------------------------------------------------------------------------
-- Keep-alive: N sequential small requests over one connection

local function keepalive_scenario()
  local N = OPT.requests
  local id = fakeorg.reports.tabular_small.id
  local kinds = {
    { label = "describe", path = "reports/" .. id .. "/describe", arg = "describe" },
    { label = "list reports", path = "reports", arg = "list" },
  }
  for _, kind in ipairs(kinds) do
    local cfg = TMP .. "/keepalive-" .. kind.arg .. ".cfg"
    local f = assert(io.open(cfg, "w"))
    f:write(read_file(TMP .. "/curl.cfg"), "compressed\nsilent\nshow-error\n")
    local url = api(kind.path)
    for _ = 1, N do f:write(format('url = "%s"\noutput = "/dev/null"\n', url)) end
    f:close()
    local size = sh(format("curl -s -K %s %s | wc -c", q(TMP .. "/curl.cfg"), q(url)))
    local function counted(cmd)
      return function()
        ORG:reset()
        local m = measure(cmd)
        local c = org_counts()
        assert(c.requests == N, format("bench: expected %d requests, the org saw %d", N, c.requests))
        m.connections, m.requests = c.connections, c.requests
        return m
      end
    end
    local ka = q(here .. "/keepalive_lua.lua")
    local contenders = {
      { name = "curl, one process, " .. N .. " URLs", key = "curl", run = counted("curl -K " .. q(cfg)) },
      { name = "sfreports, lua5.4", key = "lua", run = counted(format("lua5.4 %s %s %d %s", ka, id, N, kind.arg)) },
      { name = "sfreports, LuaJIT", key = "jit", run = counted(format("luajit %s %s %d %s", ka, id, N, kind.arg)) },
    }
    if kind.arg == "describe" then
      -- The same requests without decoding (client:request_raw): what curl does, so the
      -- difference to the rows above is the decode alone.
      contenders[#contenders + 1] = { name = "sfreports request_raw, lua5.4", key = "raw_lua",
        run = counted(format("lua5.4 %s %s %d describe_raw", ka, id, N)) }
      contenders[#contenders + 1] = { name = "sfreports request_raw, LuaJIT", key = "raw_jit",
        run = counted(format("luajit %s %s %d describe_raw", ka, id, N)) }
    end
    -- What decoding costs alone: the same answer decoded N times by cjson, no network.
    local body = TMP .. "/keepalive.json"
    sh(format("curl -s -K %s %s > %s", q(TMP .. "/curl.cfg"), q(url), q(body)))
    local decode = format("-e 'local d = require(\"cjson\").decode; local f = io.open(%s, \"rb\");"
      .. " local s = f:read(\"*a\"); for _ = 1, %d do d(s) end'", q(body):gsub("'", "'\\''"), N)
    contenders[#contenders + 1] = { name = "cjson.decode ×" .. N .. " alone, lua5.4", key = "dec_lua",
      run = function() return measure("lua5.4 " .. decode) end }
    contenders[#contenders + 1] = { name = "cjson.decode ×" .. N .. " alone, LuaJIT", key = "dec_jit",
      run = function() return measure("luajit " .. decode) end }
    interleave(contenders, OPT.ka_reps)
    out(format("### Keep-alive: %d sequential %s requests (%.1f KB of JSON each)",
      N, kind.label, tonumber(size) / 1024))
    out()
    out(format("Medians of %d interleaved runs after a warm-up; wall and cpu of the whole process."
      .. " client:describe and list_reports decode every answer, request_raw returns the text"
      .. " undecoded, curl writes it to /dev/null.", OPT.ka_reps))
    out()
    local curl = contenders[1].med
    local dec = {}
    for _, c in ipairs(contenders) do
      if c.key == "dec_lua" then dec.lua = c.med.wall elseif c.key == "dec_jit" then dec.jit = c.med.wall end
    end
    local rows = {}
    for _, c in ipairs(contenders) do
      local m = c.med
      local floor = dec[c.key] and x(m.wall / (curl.wall + dec[c.key])) or "–"
      rows[#rows + 1] = { c.name, format("%.3f", m.wall), format("%.3f", m.wall / N * 1000),
        ms(m.cpu), m.connections and format("%d", m.connections) or "–", x(m.wall / curl.wall), floor }
    end
    table_md({ "contender", "wall s", "ms / request", "cpu ms", "connections", "wall / curl",
               "wall / (curl + decode alone)" }, rows)
    for _, c in ipairs(contenders) do
      if c.key == "lua" or c.key == "jit" or c.key == "raw_lua" or c.key == "raw_jit" then
        check("Keep-alive " .. kind.label, c.name .. ": wall ≤ 1.2× curl", c.med.wall / curl.wall, 1.2)
      end
    end
  end
end

---------------------------------------------------------------------------------------
-- Hook: what an on_request hook costs on the keep-alive scenario (issue 22)

local function hook_scenario()
  local N = OPT.requests
  local id = fakeorg.reports.tabular_small.id
  local ka = q(here .. "/keepalive_lua.lua")
  local rounds = OPT.ka_reps * 2 + 1
  out(format("### Hook: on_request on %d sequential describe requests (request_raw), %d rounds", N, rounds))
  out()
  out("One process per runtime, one client and one connection; a light on_request hook (reads a few"
    .. " fields) set in every other round, alternating which goes first; each round timed by the"
    .. " process's monotonic clock. measured: the median of the per-round ratios (hook / no hook)."
    .. " computed: 1 + (the hook's own cost per exchange, timed over 200,000 exchanges without the"
    .. " network) / (ms per request without a hook). Counting (usage()) is done with or without a hook.")
  out()
  local rows = {}
  for _, rt in ipairs({ "lua5.4", "luajit" }) do
    ORG:reset()
    local m = measure(format("%s %s %s %d hook %d", rt, ka, id, N, rounds))
    local f = m.fields
    rows[#rows + 1] = { rt, format("%.3f", f.plain_ms_per_request), format("%.3f", f.hook_ms_per_request),
      format("%.2f", f.count_us), format("%.2f", f.hook_us), format("%.4f×", f.hook_ratio),
      format("%.4f×", f.hook_cost_ratio), format("%.2f×", f.spread), format("%d", f.connects) }
    -- the target is checked on the computed ratio: the measured one is within the noise of
    -- the rounds themselves (see the spread column) on a shared machine
    check("Hook", rt .. ": on_request costs < 2% (computed)", f.hook_cost_ratio, 1.02, "%.4f×")
  end
  table_md({ "runtime", "ms / request, no hook", "ms / request, hook", "µs counting / exchange",
    "µs hook / exchange", "measured ratio", "computed ratio", "spread of no-hook rounds (max/min)",
    "connections" }, rows)
end

---------------------------------------------------------------------------------------
-- Paging: the 20,000-row report through --all

local function paging_scenario()
  local big, small = fakeorg.reports.tabular_20k, fakeorg.reports.tabular_5k
  local cli = q(ROOT .. "/bin/sfreports")
  local probe = measure(cli .. " run " .. big.id .. " --all -o /dev/null", nil, { [1] = true, [2] = true })
  if probe.code ~= 0 then
    out("### Paging: the 20,000-row report through `--all`")
    out()
    out("Not measured: `sfreports run --all` is not available yet (" ..
      (probe.stderr:match("[^\n]+") or "exit " .. probe.code) .. ").")
    out()
    RESULTS[#RESULTS + 1] = { "Paging", "peak RSS bounded by one page", "not measured", "–" }
    return
  end
  local function counted(cmd, codes)
    return function()
      ORG:reset()
      local m = measure(cmd, nil, codes)
      m.requests = ORG:stats().requests
      return m
    end
  end
  local contenders = {
    { name = "one page: run, no --all (2,000 of 20,000 rows)", rows = 2000,
      run = counted(cli .. " run " .. big.id .. " -o /dev/null", { [3] = true }) },
    { name = format("--all, %d rows", small.rows), rows = small.rows,
      run = counted(cli .. " run " .. small.id .. " --all -o /dev/null") },
    { name = format("--all, %d rows", big.rows), rows = big.rows,
      run = counted(cli .. " run " .. big.id .. " --all -o /dev/null") },
  }
  interleave(contenders, OPT.paging_reps)
  out(format("### Paging: `sfreports run --all` (CSV to /dev/null, lua5.4), %d and %d rows of 14 columns",
    small.rows, big.rows))
  out()
  out(format("Medians of %d interleaved runs after a warm-up. requests: API requests the fake org served"
    .. " (the caller's run, then pages).", OPT.paging_reps))
  out()
  local page = contenders[1].med
  local rows = {}
  for _, c in ipairs(contenders) do
    local m = c.med
    rows[#rows + 1] = { c.name, format("%d", m.requests), format("%.2f", m.wall), format("%.0f", c.rows / m.wall),
      ms(m.cpu), mb(m.rss_kb), x(m.rss_kb / page.rss_kb) }
  end
  table_md({ "run", "requests", "wall s", "rows / s", "cpu ms", "peak RSS MB", "RSS / one page" }, rows)
  -- Bounded by a page, not by the report: 4x the rows may not take more memory (25% slack
  -- for the collector's timing); and the whole stream stays within a few pages.
  check("Paging", format("peak RSS, --all %d rows ≤ 1.25× --all %d rows (4× the rows)", big.rows, small.rows),
    contenders[3].med.rss_kb / contenders[2].med.rss_kb, 1.25)
  check("Paging", "peak RSS, --all 20,000 rows ≤ 2× one page (the first run + the page being read)",
    contenders[3].med.rss_kb / page.rss_kb, 2)
end

---------------------------------------------------------------------------------------
-- Planned paging: run_all over 20,000 rows with every sync run taking D seconds on the
-- server, planned ranges (a planning run, then slices 8 at a time) against keyset pages
-- (one after another); the same process, CSV into a sink that discards. Also the same
-- two with D = 0: what the rows cost without the wait (the fake org and the client's
-- CPU on this machine), the part of the wall no concurrency can hide.

local function plan_scenario()
  local big = fakeorg.reports.tabular_20k
  local D = OPT.plan_delay
  local function contender(strategy, delay)
    return { name = format("%s, D = %g s", strategy, delay), strategy = strategy, delay = delay,
      run = function()
        ORG:reset()
        ORG:control("config", { sync_delay = delay })
        local m = measure("lua5.4 " .. q(here .. "/plan_lua.lua") .. " " .. big.id .. " " .. strategy)
        local st = ORG:stats()
        m.requests, m.max_concurrent, m.runs = st.requests, st.max_concurrent, m.fields.runs
        ORG:reset()
        return m
      end }
  end
  local contenders = { contender("keyset", D), contender("planned", D), contender("keyset", 0),
    contender("planned", 0) }
  interleave(contenders, OPT.plan_reps)
  out(format("### Planned paging: run_all over %d rows (14 columns), every sync run delayed D = %g s", big.rows, D))
  out()
  out(format("Medians of %d interleaved runs after a warm-up (lua5.4, bench/plan_lua.lua: run_all, CSV to a sink"
    .. " that discards). requests: API requests the fake org served; max in flight: the most it saw at once.",
    OPT.plan_reps))
  out()
  local rows = {}
  for _, c in ipairs(contenders) do
    local m = c.med
    rows[#rows + 1] = { c.name, format("%d", m.requests), format("%.0f", m.max_concurrent or 0),
      format("%.2f", m.wall), format("%.2f", m.wall / (c.delay > 0 and c.delay or 1)), ms(m.cpu), mb(m.rss_kb) }
  end
  table_md({ "strategy", "requests", "max in flight", "wall s", "wall / D", "cpu ms", "peak RSS MB" }, rows)
  local k, p = contenders[1].med, contenders[2].med
  check("Planned paging", "wall, planned ≤ 0.35× keyset (D = 0.5 s)", p.wall / k.wall, 0.35)
  check("Planned paging", "wall, planned ≤ 4 D", p.wall / D, 4, "%.2f D")
  check("Planned paging", "peak RSS, planned ≤ 1.5× keyset", p.rss_kb / k.rss_kb, 1.5)
end

---------------------------------------------------------------------------------------
-- xlsx: the native writer against the CSV writer (time), and --all into a workbook
-- against --all into CSV (peak memory)

local function xlsx_scenario()
  local wide, big = fakeorg.reports.tabular_wide, fakeorg.reports.tabular_20k
  local cli = q(ROOT .. "/bin/sfreports")
  local writer = measure("lua5.4 " .. q(here .. "/xlsx_lua.lua") .. " " .. wide.id .. " " .. q(TMP) .. " "
    .. (OPT.reps > 5 and 15 or 3)).fields
  local book = TMP .. "/bench.xlsx"
  local contenders = {
    { name = "run, 2,000 × 25, --format csv", run = function()
        return measure(cli .. " run " .. wide.id .. " --format csv -o /dev/null") end },
    { name = "run, 2,000 × 25, --format xlsx", run = function()
        return measure(cli .. " run " .. wide.id .. " --format xlsx -o " .. q(book)) end },
    { name = "run --all, 20,000 rows, --format csv", run = function()
        return measure(cli .. " run " .. big.id .. " --all --format csv -o /dev/null") end },
    { name = "run --all, 20,000 rows, --format xlsx", run = function()
        return measure(cli .. " run " .. big.id .. " --all --format xlsx -o " .. q(book)) end },
  }
  interleave(contenders, OPT.paging_reps)
  os.remove(book)
  out("### xlsx: the native writer (libxlsxwriter, constant memory) against CSV")
  out()
  out(format("Writers alone (one process, the report run once, median of %d writes): CSV %s ms, xlsx %s ms"
    .. " (%s). CLI runs: medians of %d interleaved runs after a warm-up (lua5.4).",
    OPT.reps > 5 and 15 or 3, ms(writer.csv_s), ms(writer.xlsx_s), x(writer.xlsx_s / writer.csv_s), OPT.paging_reps))
  out()
  local rows = {}
  for _, c in ipairs(contenders) do
    rows[#rows + 1] = { c.name, ms(c.med.wall), ms(c.med.cpu), mb(c.med.rss_kb) }
  end
  table_md({ "run", "wall ms", "cpu ms", "peak RSS MB" }, rows)
  check("xlsx", "writers.xlsx 2,000 × 25 ≤ 2× writers.csv (writer alone)", writer.xlsx_s / writer.csv_s, 2)
  check("xlsx", "run 2,000 × 25 --format xlsx ≤ 2× --format csv (CLI wall)",
    contenders[2].med.wall / contenders[1].med.wall, 2)
  check("xlsx", "peak RSS, --all 20,000 rows: xlsx ≤ 1.2× csv",
    contenders[4].med.rss_kb / contenders[3].med.rss_kb, 1.2)
end

---------------------------------------------------------------------------------------

local function main()
  setup()
  local ok, err = pcall(function()
    out("## sfreports benchmarks")
    out()
    for _, l in ipairs(machine()) do out(l) end
    out()
    if wanted("sync") then
      sync_scenario("tabular_wide", "tabular 2,000 × 25")
      sync_scenario("summary_3", "summary, 3 levels")
    end
    if wanted("many") then many_scenario() end
    if wanted("keepalive") then keepalive_scenario() end
    if wanted("hook") then hook_scenario() end
    if wanted("paging") then paging_scenario() end
    if wanted("plan") then plan_scenario() end
    if wanted("xlsx") then xlsx_scenario() end
    if wanted("serve") then
      package.path = here .. "/?.lua;" .. package.path
      require("serve_bench").run({ out = out, table_md = table_md, check = check, org = ORG, root = ROOT,
        here = here, reps = OPT.reps, quick = OPT.quick })
    end
    out("### Targets")
    out()
    table_md({ "scenario", "target", "measured", "" }, RESULTS)
  end)
  ORG:stop()
  if not ok then error(err, 0) end
  if OPT.markdown then driver.write_markdown(OPT.markdown) end
end

main()
