-- bench/compare.lua: before/after comparison of two checkouts (run by bench/compare.sh,
-- `make bench-compare OLD=dir`). The scenarios of `make bench` that exercise sfreports
-- (no jsforce, no floor) run for the NEW checkout (this one, or --new DIR) and the OLD one
-- against ONE fake org, interleaved (new old new old ...) after a warm-up run of each, and
-- the table shows medians and new/old ratios of wall, CPU and peak RSS. The contender
-- scripts are this checkout's bench/*.lua, told which checkout to load through
-- SFREPORTS_BENCH_ROOT; the CLI is each checkout's own bin/sfreports.
--
--   lua5.4 bench/compare.lua OLD_DIR [--new DIR] [--reps N] [--quick] [--only a,b]
--                            [--callgrind | --no-callgrind] [--markdown FILE]
--   scenario groups for --only: sync, many, keepalive, paging, async
--
-- On a shared machine wall time is noise; CPU time (user + system, bash's `time`) is the
-- better evidence, and instruction counts the best: with --callgrind (the default) every
-- scenario also runs once per checkout under `valgrind --tool=callgrind` (a smaller
-- workload where noted), and the table shows the instructions (Ir) and their ratio. Those
-- are deterministic up to the number of polls/turns of the network loops, so the org's
-- request count is shown next to them (run_many runs with D = 0 there, so that both
-- checkouts make the same requests). About 9 minutes on 2 busy cores.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/../spec/support/?.lua;" .. package.path

local fakeorg = require "fakeorg"
local format, concat = string.format, table.concat
local q = fakeorg.shell_quote
local read_file = fakeorg.read_file

local driver = dofile(here .. "/driver.lua")
local sh, absolute, out, median, measure = driver.sh, driver.absolute, driver.out, driver.median, driver.measure

here = absolute(here)

local OPT = { reps = 9, ka_reps = 3, many_reps = 3, paging_reps = 3, async_reps = 3,
              requests = 1000, many = 100, delay = 1, async_runs = 5, callgrind = true }
do
  local i, pos = 1, {}
  while arg[i] do
    local a = arg[i]
    if a == "--quick" then
      OPT.reps, OPT.ka_reps, OPT.many_reps, OPT.paging_reps, OPT.async_reps, OPT.requests = 3, 1, 1, 1, 1, 200
    elseif a == "--callgrind" then OPT.callgrind = true
    elseif a == "--no-callgrind" then OPT.callgrind = false
    elseif a == "--only" or a == "--reps" or a == "--markdown" or a == "--new" then
      i = i + 1
      local v = arg[i] or error("bench: " .. a .. " needs a value", 0)
      if a == "--only" then
        OPT.only = {}
        for s in v:gmatch("[^,]+") do OPT.only[s] = true end
      elseif a == "--reps" then
        local n = assert(tonumber(v), "--reps")
        OPT.reps, OPT.ka_reps, OPT.many_reps, OPT.paging_reps, OPT.async_reps = n, n, n, n, n
      else
        OPT[a:sub(3)] = v
      end
    elseif a:sub(1, 2) == "--" then
      error("bench: unknown argument " .. a .. " (see the header of bench/compare.lua)", 0)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  OPT.old = pos[1] or error("usage: lua5.4 bench/compare.lua OLD_DIR [options]", 0)
end
local SIDES = {
  { name = "new", root = absolute(OPT.new or (here .. "/..")) },
  { name = "old", root = absolute(OPT.old) },
}
for _, s in ipairs(SIDES) do
  for _, rt in ipairs({ "lua5.4", "luajit" }) do
    local so = s.root .. "/build/" .. rt .. "/sfreports/core.so"
    if not read_file(so) then
      error(format("bench: %s has no %s (run `make -C %s LUA=%s all`)", s.root, so, s.root, rt), 0)
    end
  end
end

local ORG, TMP, ENVFILE

-- Instructions executed by cmd's process under callgrind (children not traced).
local function instructions(cmd, env)
  local cg = TMP .. "/callgrind.out"
  os.remove(cg)
  local inner = format("%s valgrind --tool=callgrind --callgrind-out-file=%s %s >/dev/null 2>%s",
    env or "", q(cg), cmd, q(TMP .. "/valgrind.err"))
  local ok = os.execute(format("set -a; . %s; set +a; exec bash -c %s", q(ENVFILE), q(inner)))
  local text = read_file(cg) or ""
  local n = text:match("\nsummary:%s*(%d+)") or text:match("\ntotals:%s*(%d+)")
  if not (ok == true or ok == 0) or not n then
    error("bench: callgrind failed: " .. cmd .. "\n" .. (read_file(TMP .. "/valgrind.err") or ""), 0)
  end
  return tonumber(n)
end

---------------------------------------------------------------------------------------
-- scenarios: cmd(root, small) builds the command line for a checkout (small: the
-- callgrind workload); prepare() readies the org before each run.

local function script(rt, name, ...)
  local all = { ... }
  return function(root, small)
    local args = small or all
    return format("%s %s %s", rt, q(here .. "/" .. name), concat(args, " ")), "SFREPORTS_BENCH_ROOT=" .. q(root)
  end
end

local function cli(...)
  local args = concat({ ... }, " ")
  return function(root) return format("lua5.4 %s %s", q(root .. "/bin/sfreports"), args) end
end

local R = fakeorg.reports
local function reset() ORG:reset() end
local SCENARIOS = {}
local function add(group, label, reps, cmd, extra)
  local s = { group = group, label = label, reps = reps, cmd = cmd }
  for k, v in pairs(extra or {}) do s[k] = v end
  SCENARIOS[#SCENARIOS + 1] = s
end

for _, rep in ipairs({ { R.tabular_wide, "tabular 2,000 × 25" }, { R.summary_3, "summary 3 levels" } }) do
  local id = rep[1].id
  add("sync", "Sync CSV " .. rep[2] .. ": CLI (lua5.4)", OPT.reps, cli("run", id, "--format csv -o /dev/null"))
  add("sync", "Sync CSV " .. rep[2] .. ": in-process lua5.4", OPT.reps, script("lua5.4", "sync_lua.lua", id))
  add("sync", "Sync CSV " .. rep[2] .. ": in-process LuaJIT", OPT.reps, script("luajit", "sync_lua.lua", id))
end
for _, rt in ipairs({ "lua5.4", "luajit" }) do
  add("many", format("run_many %d async, D = %g s, %s", OPT.many, OPT.delay, rt), OPT.many_reps,
    script(rt, "many_lua.lua", R.tabular_small.id, OPT.many),
    { prepare = function() reset(); ORG:control("config", { async_delay = OPT.delay }) end, run_wall = true,
      -- under callgrind the polls would follow valgrind's pace: instances finish at once instead
      ir_prepare = function() reset(); ORG:control("config", { async_delay = 0 }) end, small_note = "D = 0" })
end
for _, rt in ipairs({ "lua5.4", "luajit" }) do
  add("keepalive", format("Keep-alive %d describe, %s", OPT.requests, rt), OPT.ka_reps,
    script(rt, "keepalive_lua.lua", R.tabular_small.id, OPT.requests, "describe"),
    { small = { R.tabular_small.id, 200, "describe" }, small_note = "200 requests" })
end
for _, rt in ipairs({ "lua5.4", "luajit" }) do
  add("keepalive", format("Keep-alive %d list reports, %s", OPT.requests, rt), OPT.ka_reps,
    -- under callgrind too at the scenario's size: 200 requests would weigh start-up 5 times
    script(rt, "keepalive_lua.lua", R.tabular_small.id, OPT.requests, "list"))
end
add("paging", "Paging run --all 20,000 rows (CLI)", OPT.paging_reps, cli("run", R.tabular_20k.id, "--all -o /dev/null"),
  { small_cmd = cli("run", R.tabular_5k.id, "--all -o /dev/null"), small_note = "5,000 rows" })
for _, rt in ipairs({ "lua5.4", "luajit" }) do
  add("async", format("Async %d × run_async + wait + CSV, tabular 2,000 × 25, %s", OPT.async_runs, rt), OPT.async_reps,
    script(rt, "async_lua.lua", R.tabular_wide.id, OPT.async_runs),
    { prepare = function() reset(); ORG:control("config", { async_delay = 0 }) end,
      small = { R.tabular_wide.id, 2 }, small_note = "2 runs" })
end

local function run_side(s, side)
  if s.prepare then s.prepare() end
  local m = measure(s.cmd(side.root))
  if s.run_wall then m.wall = m.fields.run_wall end
  return m
end

local function ratio(a, b) return (a and b and b > 0) and a / b or nil end
local function x(r) return r and format("%.3f", r) or "–" end

local function compare(s)
  local samples = { {}, {} }
  for _, side in ipairs(SIDES) do run_side(s, side) end   -- warm-up
  for _ = 1, s.reps do
    for i, side in ipairs(SIDES) do samples[i][#samples[i] + 1] = run_side(s, side) end
  end
  local med = {}
  for i = 1, 2 do
    med[i] = {}
    for _, k in ipairs({ "wall", "cpu", "rss_kb" }) do
      local col = {}
      for _, smp in ipairs(samples[i]) do col[#col + 1] = smp[k] end
      med[i][k] = median(col)
    end
  end
  if OPT.callgrind then
    for i, side in ipairs(SIDES) do
      local prepare = s.ir_prepare or s.prepare or reset
      prepare()
      local cmd, env
      if s.small_cmd then cmd, env = s.small_cmd(side.root) else cmd, env = s.cmd(side.root, s.small) end
      med[i].ir = instructions(cmd, env)
      med[i].requests = ORG:stats().requests
    end
  end
  local n, o = med[1], med[2]
  local row = { s.label .. (OPT.callgrind and s.small_note and (" (Ir: " .. s.small_note .. ")") or ""),
    format("%.0f / %.0f", n.wall * 1000, o.wall * 1000), x(ratio(n.wall, o.wall)),
    format("%.0f / %.0f", n.cpu * 1000, o.cpu * 1000), x(ratio(n.cpu, o.cpu)),
    format("%.1f / %.1f", n.rss_kb / 1024, o.rss_kb / 1024), x(ratio(n.rss_kb, o.rss_kb)) }
  if OPT.callgrind then
    row[#row + 1] = format("%.1f / %.1f", n.ir / 1e6, o.ir / 1e6)
    row[#row + 1] = x(ratio(n.ir, o.ir))
    row[#row + 1] = format("%d / %d", n.requests, o.requests)
  end
  return row
end

local function machine()
  local cpu = sh("grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'"):gsub("%s+$", "")
  local function git(root)
    return (sh("git -C " .. q(root) .. " log -1 --format='%h %s' 2>/dev/null"):match("[^\n]*"))
  end
  return {
    format("- machine: %s, %s cores, load average %s", cpu, sh("nproc"):gsub("%s+$", ""),
      (read_file("/proc/loadavg") or "?"):match("^(%S+ %S+ %S+)")),
    format("- date: %s", os.date("!%Y-%m-%d %H:%M UTC")),
    format("- new: %s (%s)", SIDES[1].root, git(SIDES[1].root)),
    format("- old: %s (%s)", SIDES[2].root, git(SIDES[2].root)),
  }
end

local function main()
  ORG, TMP, ENVFILE = driver.start_org()
  local ok, err = pcall(function()
    out("## sfreports: new vs old")
    out()
    for _, l in ipairs(machine()) do out(l) end
    out()
    out("Medians of interleaved runs (new old new old ...) after a warm-up of each; each cell is new / old,"
      .. " then the ratio new / old. wall: the process (run_many: its own clock around the runs);"
      .. " cpu: user + system; RSS: peak resident set."
      .. (OPT.callgrind and " Ir: instructions of one run under callgrind (millions); requests: what the org served"
        .. " during that run." or ""))
    out()
    local head = { "scenario", "wall ms", "wall", "cpu ms", "cpu", "RSS MB", "RSS" }
    if OPT.callgrind then
      head[#head + 1], head[#head + 2], head[#head + 3] = "Ir M", "Ir", "requests"
    end
    driver.table_head(head)
    for _, s in ipairs(SCENARIOS) do
      if not OPT.only or OPT.only[s.group] then driver.table_row(compare(s)) end
    end
    out()
  end)
  ORG:stop()
  if not ok then error(err, 0) end
  if OPT.markdown then driver.write_markdown(OPT.markdown) end
end

main()
