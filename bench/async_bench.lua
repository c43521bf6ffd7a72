-- bench/async_bench.lua: many asynchronous runs at once through client:run_many, against
-- the fake org (a real nginx server on loopback) with a server-side instance delay D.
--
--   lua5.4 bench/async_bench.lua [N] [D1,D2,...]     (also lua5.1, lua5.3, luajit;
--                                                      build the C core first: make LUA=...)
--
-- For each D (default 0.5, 1 and 2 s) it runs N (default 100) reports asynchronously in
-- one run_many call: N instance POSTs, polls, and the results. It prints the wall time as
-- a multiple of D (the target is <= 1.3x: the last report is seen finished soon after it
-- finished, although all N wait together), the status requests per instance counted by
-- the server (mean and max), all HTTP requests, and in how many engine turns the polls went
-- out (polls of instances created together are batched into the same turns).
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;"
  .. here .. "/../spec/support/?.lua;" .. package.path
package.cpath = here .. "/../build/" .. runtime .. "/?.so;" .. package.cpath

local fakeorg = require "fakeorg"
local sfreports = require "sfreports"
local core = require "sfreports.core"

local N = tonumber(arg and arg[1]) or 100
local DELAYS = {}
for d in ((arg and arg[2]) or "0.5,1,2"):gmatch("[^,]+") do DELAYS[#DELAYS + 1] = tonumber(d) end

local REPORT = fakeorg.reports.tabular_small

local function bench(org, delay)
  org:reset()
  org:control("config", { async_delay = delay })
  local client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  local list = {}
  for i = 1, N do list[i] = { id = REPORT.id, async = true } end
  local t0 = core.monotime()
  local reports, errs, stats = client:run_many(list)
  local wall = core.monotime() - t0
  client:close()
  local failed = 0
  for i = 1, N do
    if not reports[i] or errs[i] or reports[i]:row_count() ~= REPORT.rows then failed = failed + 1 end
  end
  local server = org:stats()
  local instances, polls, most = 0, 0, 0
  for _, n in pairs(server.instance_polls) do
    instances, polls = instances + 1, polls + n
    if n > most then most = n end
  end
  return {
    delay = delay, wall = wall, ratio = wall / delay, failed = failed, instances = instances,
    polls_mean = instances > 0 and polls / instances or 0, polls_max = most,
    requests = server.requests, poll_turns = stats.poll_turns, turns = stats.turns,
  }
end

local function main()
  local org = fakeorg.start({})
  local ok, err = pcall(function()
    print(("async_bench: %d async runs per row, %s, fake org %s"):format(N, runtime, org.url))
    print("")
    print(("%6s %8s %7s %10s %9s %9s %10s %7s %6s"):format(
      "D (s)", "wall (s)", "wall/D", "instances", "polls/i", "max/i", "requests", "pturns", "fail"))
    for _, d in ipairs(DELAYS) do
      local r = bench(org, d)
      print(("%6.2f %8.3f %6.2fx %10d %9.2f %9d %10d %7d %6d"):format(
        r.delay, r.wall, r.ratio, r.instances, r.polls_mean, r.polls_max, r.requests, r.poll_turns, r.failed))
    end
    print("")
    print("polls/i: status requests per instance (server count); requests: all HTTP requests;")
    print("pturns: engine turns in which polls went out; target wall/D <= 1.3")
  end)
  org:stop()
  if not ok then error(err, 0) end
end

main()
