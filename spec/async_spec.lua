-- Asynchronous runs against the fake org over real HTTP: one poll, waiting (backoff,
-- deadline, Error, vanished instances, deletion), the sleep strategies (user hook,
-- yield protocol driven by a hand-written loop), and run_many with many requests in
-- flight together from one Lua thread.
local fakeorg = require "fakeorg"
local sfreports = require "sfreports"
local core = require "sfreports.core"
local async = require "sfreports.async"

local monotime = core.monotime
local R = fakeorg.reports
local SLOW = require("timing").SLOW

describe("sfreports.async", function()
  local org, client

  setup(function()
    org = fakeorg.start({})
  end)

  teardown(function()
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)

  after_each(function()
    if client then client:close() end
  end)

  local function delay(s)
    local r = org:control("config", { async_delay = s })
    assert.is_true(r.ok)
  end

  local function elapsed_since(t0) return monotime() - t0 end

  local function instance_ids(report_id)
    local list = assert(client:instances(report_id))
    local out = {}
    for _, inst in ipairs(list) do out[inst.id] = inst.status end
    return out
  end

  -- Resumes `co` until it dies, sleeping for each sfreports sleep request; returns the
  -- coroutine's results and the requests seen.
  local function drive(co)
    local seen = {}
    local res = { coroutine.resume(co) }
    while coroutine.status(co) ~= "dead" do
      assert.is_true(res[1], tostring(res[2]))
      local req = res[2]
      assert.equal("table", type(req))
      assert.equal("sleep", req.sfreports)
      assert.is_true(req.seconds >= 0)
      seen[#seen + 1] = req.seconds
      core.sleep(req.seconds)
      res = { coroutine.resume(co) }
    end
    assert.is_true(res[1], tostring(res[2]))
    return res[2], res[3], seen
  end

  describe("poll", function()
    it("checks once without waiting, and sees the results only when they are there", function()
      delay(0.4)
      local inst = assert(client:run_async(R.tabular_small.id))
      assert.equal("New", inst.status)
      local same, report = client:poll(inst)
      assert.equal(1, org:stats().instance_polls[inst.id]) -- one check at the org
      assert.equal(inst, same)
      assert.is_nil(report) -- fetched while not finished: attributes only, no factMap
      assert.truthy(inst.status == "New" or inst.status == "Running")
      assert.equal(1, inst.polls)
      core.sleep(0.5)
      same, report = inst:poll()
      assert.equal(inst, same)
      assert.equal("Success", inst.status)
      assert.equal(40, report:row_count())
      assert.equal(2, inst.polls)
    end)

    it("reports a vanished instance as a 404 that names the instance", function()
      local inst = assert(client:run_async(R.tabular_small.id))
      assert.is_true(assert(inst:delete()))
      local before = org:stats().requests
      local report, err = inst:wait({ timeout = 5 })
      assert.is_nil(report)
      assert.equal(before + 1, org:stats().requests, "a gone instance is not waited for")
      assert.equal(404, err.status)
      assert.is_true(err.gone)
      assert.is_false(err.retryable)
      assert.equal(inst.id, err.instance_id)
      assert.equal(R.tabular_small.id, err.report_id)
      assert.matches("no longer exists", err.message)
    end)

    it("raises on something that is not an instance", function()
      assert.has_error(function() client:poll({ id = "x" }) end,
        "sfreports: poll expects an instance (from client:run_async or client:instances), got table")
    end)
  end)

  describe("wait", function()
    it("returns the report soon after the instance finishes, with few polls", function()
      delay(1)
      local inst = assert(client:run_async(R.tabular_small.id))
      local report = assert(inst:wait({ timeout = 10 }))
      assert.equal(40, report:row_count())
      assert.equal("Success", inst.status)
      assert.is_true(inst.polls >= 2 and inst.polls <= 6, "polls " .. inst.polls)
      local server = org:stats().instance_polls[inst.id]
      assert.equal(inst.polls, server)
    end)

    it("turns an Error status into an api error and deletes the instance when asked", function()
      delay(0.3)
      local inst = assert(client:run_async(R.async_error.id))
      local report, err = client:wait(inst, { delete = "after" })
      assert.is_nil(report)
      assert.equal("api", err.kind)
      assert.equal("INSTANCE_ERROR", err.code)
      assert.equal(inst.id, err.instance_id)
      assert.is_false(err.retryable)
      assert.equal("Error", inst.status)
      assert.is_true(inst.deleted)
      assert.is_nil(instance_ids(R.async_error.id)[inst.id])
    end)

    it("keeps the instance (and its id in the error) when the deadline passes", function()
      local inst = assert(client:run_async(R.never_done.id))
      local t0 = monotime()
      local report, err = inst:wait({ timeout = 0.7, poll_interval = 0.1 })
      local took = elapsed_since(t0)
      assert.is_nil(report)
      assert.equal("timeout", err.kind)
      assert.equal(inst.id, err.instance_id)
      assert.equal(R.never_done.id, err.report_id)
      assert.is_true(err.retryable)
      assert.matches(inst.id, err.message, 1, true)
      assert.is_true(took >= 0.7, "took " .. took) -- not before the deadline
      assert.is_true(org:stats().instance_polls[inst.id] >= 2) -- polled until then
      assert.equal("Running", instance_ids(R.never_done.id)[inst.id])
      -- the caller can come back later with the same instance
      local again, err2 = inst:wait({ timeout = 0 })
      assert.is_nil(again)
      assert.equal("timeout", err2.kind)
    end)

    it("ends with the wait's timeout error when the time runs out during a poll", function()
      local inst = assert(client:run_async(R.never_done.id))
      -- every poll is held: the first one is still waiting for its answer at the deadline
      org:control("fault", { kind = "stall", count = 5, seconds = 3, path = "/instances/" .. inst.id })
      local report, err = inst:wait({ timeout = 0.6, poll_interval = 0.1 })
      assert.is_nil(report)
      assert.equal("timeout", err.kind)
      assert.equal(inst.id, err.instance_id) -- the wait's error, not the transport's
      assert.matches("still", err.message, 1, true)
      assert.is_true(err.retryable)
      local polled = 0 -- (a held poll is not in instance_polls: the fault answers it)
      for uri, n in pairs(org:stats().by_path) do
        if uri:find("/instances/" .. inst.id, 1, true) then polled = polled + n end
      end
      assert.is_true(polled >= 1)
      org:reset()
    end)

    it("deletes the instance on a timeout when asked", function()
      local inst = assert(client:run_async(R.never_done.id))
      local _, err = inst:wait({ timeout = 0.3, delete = "timeout" })
      assert.equal("timeout", err.kind)
      assert.equal(inst.id, err.instance_id)
      assert.is_true(err.deleted)
      assert.is_false(err.retryable)
      assert.is_nil(instance_ids(R.never_done.id)[inst.id])
    end)

    it("deletes after reading with delete = true, and keeps the instance by default", function()
      delay(0.2)
      local kept = assert(client:run_async(R.tabular_small.id))
      local gone = assert(client:run_async(R.tabular_small.id))
      assert(kept:wait())
      assert(gone:wait({ delete = true }))
      local ids = instance_ids(R.tabular_small.id)
      assert.equal("Success", ids[kept.id])
      assert.is_nil(ids[gone.id])
    end)

    it("polls at once an instance that already finished", function()
      delay(0)
      local inst = assert(client:run_async(R.tabular_small.id))
      core.sleep(0.05)
      local list = assert(client:instances(R.tabular_small.id))
      assert.equal("Success", list[1].status)
      local slept = 0
      local report = assert(list[1]:wait({ sleep = function(s) slept = slept + s end }))
      assert.equal(0, slept)
      assert.equal(40, report:row_count())
      assert.equal(inst.id, list[1].id)
    end)

    it("checks its options", function()
      local inst = assert(client:run_async(R.tabular_small.id))
      assert.has_error(function() inst:wait({ timeot = 1 }) end, "sfreports: unknown option 'timeot' for wait")
      assert.has_error(function() inst:wait({ delete = "later" }) end)
      assert.has_error(function() inst:wait({ timeout = "1" }) end)
      assert.has_error(function() inst:wait({ details = 1 }) end)
    end)
  end)

  describe("sleeping", function()
    it("uses a sleep function from the call options", function()
      delay(0.6)
      local calls, total = 0, 0
      local function my_sleep(s)
        calls, total = calls + 1, total + s
        core.sleep(s)
      end
      local inst = assert(client:run_async(R.tabular_small.id))
      assert(inst:wait({ sleep = my_sleep }))
      assert.is_true(calls >= 1 and total > 0)
      assert.equal(calls, inst.polls) -- a new instance: one sleep before each poll
      assert.equal(calls, org:stats().instance_polls[inst.id])
    end)

    it("uses a sleep function from the client options", function()
      delay(0.3)
      local calls = 0
      local c = assert(sfreports.new({ instance_url = org.url, access_token = org.token,
        sleep = function(s) calls = calls + 1; core.sleep(s) end }))
      local inst = assert(c:run_async(R.tabular_small.id))
      assert(inst:wait())
      c:close()
      assert.is_true(calls >= 1)
    end)

    it("yields { sfreports = 'sleep', seconds = s } to a hand-written resume loop", function()
      delay(0.5)
      local inst = assert(client:run_async(R.tabular_small.id))
      local co = coroutine.create(function() return inst:wait({ yield = true }) end)
      local report, err, seen = drive(co)
      assert.is_nil(err)
      assert.equal(40, report:row_count())
      assert.is_true(#seen >= 1)
      assert.equal(#seen, inst.polls) -- a new instance: one sleep before each poll
    end)

    it("lets one loop wait for several instances without blocking between them", function()
      delay(0.6)
      local a = assert(client:run_async(R.tabular_small.id))
      local b = assert(client:run_async(R.summary_1.id))
      local tasks = {
        coroutine.create(function() return a:wait({ yield = true }) end),
        coroutine.create(function() return b:wait({ yield = true }) end),
      }
      -- a tiny scheduler: each task sleeps until its own wake-up time
      local wake, results, yields, yields_at_first_end = { 0, 0 }, {}, { 0, 0 }, nil
      while not (results[1] and results[2]) do
        local soonest = math.huge
        for i, co in ipairs(tasks) do
          if not results[i] and monotime() >= wake[i] then
            local ok, v = coroutine.resume(co)
            assert.is_true(ok, tostring(v))
            if coroutine.status(co) == "dead" then
              results[i] = v
              yields_at_first_end = yields_at_first_end or { yields[1], yields[2] }
            else
              assert.equal("sleep", v.sfreports)
              yields[i] = yields[i] + 1
              wake[i] = monotime() + v.seconds
            end
          end
          if not results[i] then soonest = math.min(soonest, wake[i]) end
        end
        if soonest < math.huge then core.sleep(math.max(0, soonest - monotime())) end
      end
      assert.equal(40, results[1]:row_count())
      assert.equal("SUMMARY", results[2].format)
      -- both waits overlapped: each had handed its sleep to the loop before either ended
      assert.is_true(yields_at_first_end[1] >= 1 and yields_at_first_end[2] >= 1)
      assert.equal(yields[1], org:stats().instance_polls[a.id])
      assert.equal(yields[2], org:stats().instance_polls[b.id])
    end)

    it("refuses yield = true outside a coroutine", function()
      local inst = assert(client:run_async(R.tabular_small.id))
      assert.has_error(function() inst:wait({ yield = true }) end,
        "sfreports: yield = true needs to run inside a coroutine (see the yield protocol in sfreports.async)")
    end)
  end)

  describe("run_many", function()
    it("runs 50 async reports that each take 1 s in one window of about 1 s", function()
      delay(1)
      local list = {}
      for i = 1, 50 do list[i] = { id = R.tabular_small.id, async = true } end
      local reports, errs, stats = client:run_many(list)
      for i = 1, 50 do
        assert.is_nil(errs[i], tostring(errs[i]))
        assert.equal(40, reports[i]:row_count())
      end
      assert.equal(50, reports.n)
      local server = org:stats()
      assert.equal(50, server.max_running_instances) -- all 50 were running at once
      local instances, polls = 0, 0
      for _, n in pairs(server.instance_polls) do
        instances, polls = instances + 1, polls + n
      end
      assert.equal(50, instances)
      assert.equal(stats.polls, polls)
      assert.is_true(polls / 50 <= 6, "polls per instance " .. polls / 50)
      -- polls of instances created together go out together
      assert.is_true(stats.poll_turns <= 8, "poll turns " .. stats.poll_turns)
      assert.is_true(stats.max_async >= 50)
    end)

    it("returns results and errors in input order; one failure does not stop the others", function()
      delay(0.3)
      local list = {
        R.summary_1.id,                                       -- sync
        { id = R.tabular_small.id, async = true },            -- async
        "00OFk00000Z0001MAB",                                 -- valid id, no such report
        { id = R.async_error.id, async = true },              -- instance ends in Error
        "not-an-id",                                          -- refused before any request
        { id = R.matrix.id, details = false },                -- sync, summary only
        { id = R.tabular_small.id, async = true, details = false },
      }
      local before = org:stats().requests
      local reports, errs = client:run_many(list)
      assert.equal("SUMMARY", reports[1].format)
      assert.equal(R.summary_1.id, reports[1].id)
      assert.equal(40, reports[2]:row_count())
      assert.is_nil(reports[3])
      assert.equal(404, errs[3].status)
      assert.equal("00OFk00000Z0001MAB", errs[3].report_id)
      assert.equal("INSTANCE_ERROR", errs[4].code)
      assert.equal(R.async_error.id, errs[4].report_id)
      assert.truthy(errs[4].instance_id)
      assert.equal("invalid", errs[5].kind)
      assert.equal("MATRIX", reports[6].format)
      assert.is_false(reports[6].has_details)
      assert.is_false(reports[7].has_details)
      assert.equal(R.tabular_small.id, reports[7].id)
      for _, i in ipairs({ 1, 2, 6, 7 }) do assert.is_nil(errs[i]) end
      for _, i in ipairs({ 3, 4, 5 }) do assert.is_nil(reports[i]) end
      -- the malformed id sent nothing: 3 sync runs + 3 POSTs + their polls
      assert.is_true(org:stats().requests - before >= 6)
      assert.truthy(client.limit_info and client.limit_info["api-usage"])
      assert.equal(15000, client.limit_info["api-usage"].max)
    end)

    it("gives a never-finishing instance a timeout error with its id while the rest finish", function()
      delay(0.3)
      local t0 = monotime()
      local reports, errs = client:run_many({
        { id = R.tabular_small.id, async = true },
        { id = R.never_done.id, async = true },
        R.summary_1.id,
      }, { timeout = 0.8 })
      local took = elapsed_since(t0)
      assert.equal(40, reports[1]:row_count())
      assert.equal("SUMMARY", reports[3].format)
      assert.equal("timeout", errs[2].kind)
      assert.equal(R.never_done.id, errs[2].report_id)
      assert.equal("Running", instance_ids(R.never_done.id)[errs[2].instance_id])
      assert.is_true(took >= 0.8, "took " .. took) -- not before the deadline
    end)

    it("keeps at most max_concurrent_sync sync runs in flight", function()
      -- under valgrind or the sanitizers the server delay grows with the slowdown, so that
      -- starting 12 requests still takes less than one server delay
      local d = 0.2 * SLOW
      -- and the first runs wait at the org until as many as may overlap have come
      org:control("config", { sync_delay = d, sync_gate = 4 })
      local list = {}
      for i = 1, 12 do list[i] = R.tabular_small.id end
      local reports, _, stats = client:run_many(list, { max_concurrent_sync = 4 })
      for i = 1, 12 do assert.equal(40, reports[i]:row_count()) end
      assert.equal(4, org:stats().max_concurrent) -- at the org: never more than 4 at once
      assert.equal(12, org:stats().requests)
      assert.equal(4, stats.max_sync)
      -- by default they all go together
      org:reset()
      org:control("config", { sync_delay = d, sync_gate = 12 })
      reports = client:run_many(list)
      for i = 1, 12 do assert.equal(40, reports[i]:row_count()) end
      assert.equal(12, org:stats().max_concurrent)
    end)

    it("keeps at most max_concurrent_fetch async requests in flight", function()
      delay(0.2)
      local list = {}
      for i = 1, 9 do list[i] = { id = R.tabular_small.id, async = true } end
      local reports, errs, stats = client:run_many(list, { max_concurrent_fetch = 3 })
      for i = 1, 9 do assert.is_nil(errs[i]); assert.equal(40, reports[i]:row_count()) end
      assert.equal(3, stats.max_async)
      assert.equal(9, stats.instances)
    end)

    it("deletes instances after reading when asked", function()
      delay(0.2)
      local reports, _, stats = client:run_many({
        { id = R.tabular_small.id, async = true },
        { id = R.tabular_small.id, async = true, delete = false },
      }, { delete = "after" })
      assert.equal(40, reports[1]:row_count())
      assert.equal(40, reports[2]:row_count())
      assert.equal(1, stats.deletes)
      local n = 0
      for _ in pairs(instance_ids(R.tabular_small.id)) do n = n + 1 end
      assert.equal(1, n)
    end)

    it("yields to a hand-written loop while sync runs keep progressing", function()
      delay(0.6)
      org:control("config", { sync_delay = 0.7 })
      local co = coroutine.create(function()
        return client:run_many({ { id = R.tabular_small.id, async = true }, R.summary_1.id },
          { yield = true })
      end)
      local reports, errs, seen = drive(co)
      assert.is_nil(errs[1]); assert.is_nil(errs[2])
      assert.equal(40, reports[1]:row_count())
      assert.equal("SUMMARY", reports[2].format)
      assert.is_true(#seen >= 2)
      -- the 0.7 s sync run overlapped the async run's requests at the org
      assert.is_true(org:stats().max_concurrent >= 2)
    end)

    it("lets two run_many calls share one client from two coroutines", function()
      delay(0.4 * SLOW)
      org:control("config", { sync_delay = 0.2 })
      local function job(ids)
        return coroutine.create(function()
          local list = {}
          for i, id in ipairs(ids) do list[i] = { id = id, async = i % 2 == 0 } end
          return client:run_many(list, { yield = true })
        end)
      end
      local jobs = {
        job({ R.tabular_small.id, R.summary_1.id, R.matrix.id, R.tabular_small.id }),
        job({ R.matrix.id, R.tabular_small.id, R.summary_1.id }),
      }
      local results, wake = {}, { 0, 0 }
      local t0 = monotime()
      while not (results[1] and results[2]) do
        for i, co in ipairs(jobs) do
          if not results[i] and monotime() >= wake[i] then
            local ok, a, b = coroutine.resume(co)
            assert.is_true(ok, tostring(a))
            if coroutine.status(co) == "dead" then
              results[i] = { a, b }
            else
              wake[i] = monotime() + a.seconds
            end
          end
        end
        core.sleep(0.005)
        assert.is_true(monotime() - t0 < 60, "the two run_many calls did not finish") -- a hang guard
      end
      -- both calls' instances (2 + 1) were running at once at the org
      assert.equal(3, org:stats().max_running_instances)
      local want = { { 40, "SUMMARY", "MATRIX", 40 }, { "MATRIX", 40, "SUMMARY" } }
      for j, w in ipairs(want) do
        local reports, errs = results[j][1], results[j][2]
        for i, expect in ipairs(w) do
          assert.is_nil(errs[i], tostring(errs[i]))
          if type(expect) == "number" then
            assert.equal(expect, reports[i]:row_count())
          else
            assert.equal(expect, reports[i].format)
          end
        end
      end
    end)

    it("reports an expired token as auth errors in place", function()
      org:control("expire_tokens")
      local reports, errs = client:run_many({ R.matrix.id, { id = R.tabular_small.id, async = true } })
      assert.is_nil(reports[1]); assert.is_nil(reports[2])
      assert.equal("auth", errs[1].kind)
      assert.equal("auth", errs[2].kind)
      assert.equal(401, errs[2].status)
      assert.equal(R.tabular_small.id, errs[2].report_id)
      assert.is_nil(tostring(errs[1]):find(org.token, 1, true))
    end)

    it("renews an expired token once for all requests in flight", function()
      delay(0.2)
      local c = assert(sfreports.new({ auth = { flow = "refresh_token", client_id = "cid",
        refresh_token = "rt", login_url = org.url } }))
      local function token_calls() return org:stats().by_path["/services/oauth2/token"] or 0 end
      assert.equal(1, token_calls())
      org:control("expire_tokens")
      local list = {}
      for i = 1, 6 do list[i] = { id = R.tabular_small.id, async = i > 3 } end
      local reports, errs, stats = c:run_many(list)
      c:close()
      for i = 1, 6 do
        assert.is_nil(errs[i], tostring(errs[i]))
        assert.equal(40, reports[i]:row_count())
      end
      assert.equal(2, token_calls())
      assert.equal(6, stats.resent) -- 3 sync runs and 3 instance POSTs went out with the old token
    end)

    it("hands a retryable failure to the client's retry policy", function()
      org:control("fault", { kind = "retry_after", count = 1, path = "/reports/" .. R.summary_1.id .. "%?" })
      local c = assert(sfreports.new({ instance_url = org.url, access_token = org.token, retry_base = 0.05 }))
      local reports, errs, stats = c:run_many({ R.summary_1.id, R.matrix.id })
      c:close()
      assert.is_nil(errs[1], tostring(errs[1]))
      assert.equal("SUMMARY", reports[1].format)
      assert.equal("MATRIX", reports[2].format)
      assert.equal(1, stats.resent)
    end)

    it("uses a user sleep hook between polls", function()
      delay(0.4)
      local calls = 0
      local reports = client:run_many({ { id = R.tabular_small.id, async = true } },
        { sleep = function(s) calls = calls + 1; core.sleep(s) end })
      assert.equal(40, reports[1]:row_count())
      assert.is_true(calls >= 1)
    end)

    it("raises on misuse", function()
      assert.has_error(function() client:run_many("x") end)
      assert.has_error(function() client:run_many({ { id = R.matrix.id, asynk = true } }) end,
        "sfreports: unknown option 'asynk' for run_many entry 1")
      assert.has_error(function() client:run_many({ 42 }) end)
      assert.has_error(function() client:run_many({}, { max_concurrent_sync = 0 }) end)
      assert.has_error(function() client:run_many({ R.matrix.id }, { yield = true }) end)
    end)

    it("returns empty arrays for an empty list", function()
      local reports, errs = client:run_many({})
      assert.equal(0, reports.n)
      assert.equal(0, errs.n)
    end)
  end)

  describe("inside nginx", function()
    -- A content handler that runs many reports (and one that never finishes) with
    -- run_many on the cosocket transport; ngx.sleep is chosen without being asked for.
    local HANDLER = [==[
local M = {}
function M.many()
  local cjson = require "cjson"
  local async = require "sfreports.async"
  local client = assert(require("sfreports").from_env())
  local args = ngx.req.get_uri_args()
  local list = {}
  for i = 1, 20 do list[i] = { id = args.async_id, async = true } end
  for i = 21, 23 do list[i] = args.sync_id end
  list[24] = { id = args.never_id, async = true, timeout = 3 }
  local _, blocking = async.sleeper(client, {})
  local t0 = ngx.now()
  local reports, errs = client:run_many(list)
  ngx.update_time()
  local ok = 0
  for i = 1, 23 do if reports[i] and not errs[i] then ok = ok + 1 end end
  ngx.say(cjson.encode({ elapsed = ngx.now() - t0, ok = ok, timeout_kind = errs[24] and errs[24].kind,
    instance_id = errs[24] and errs[24].instance_id, blocking = blocking,
    transport = getmetatable(client.transport) == require("sfreports.transport_ngx").Transport }))
end
return M
]==]
    local SERVER = [[
        location = /many { content_by_lua_block { require("async_handler").many() } }
        location = /ping { content_by_lua_block { ngx.say("pong") } }
]]

    it("runs many reports with ngx.sleep without blocking the worker", function()
      local nginx = require "nginx"
      -- wide windows: the ping (two curls) must be answered inside the never-ending run's
      -- 3 s, and all 21 instances created inside one async delay, however busy the machine
      delay(1)
      org:control("config", { sync_delay = 0.3 })
      local srv = nginx.start_sfreports({ org = org, server = SERVER, files = { ["async_handler.lua"] = HANDLER },
        lua_path = "{{ROOT}}/lua/?.lua;{{ROOT}}/lua/?/init.lua;{{PREFIX}}/?.lua" })
      local ok, err = pcall(function()
        local q = fakeorg.shell_quote
        local path = ("/many?async_id=%s&sync_id=%s&never_id=%s"):format(R.tabular_small.id, R.summary_1.id,
          R.never_done.id)
        local bg = io.popen("curl -s --max-time 60 " .. q(srv.url .. path))
        for _ = 1, 500 do -- until the run_many is under way at the org
          if org:stats().requests > 0 then break end
          core.sleep(0.01)
        end
        -- the worker answers while the run_many above waits between polls: the org sees
        -- more of its requests after the ping's answer
        local status, body = srv:request("/ping")
        local at_ping = org:stats().requests
        local out = fakeorg.decode(bg:read("*a"))
        bg:close()
        assert.equal(200, status)
        assert.equal("pong\n", body)
        assert.is_true(at_ping > 0 and org:stats().requests > at_ping, "the ping waited for the run_many")
        assert.is_true(out.transport)
        assert.is_false(out.blocking) -- ngx.sleep, not the C core's blocking sleep
        assert.equal(23, out.ok)
        assert.equal("timeout", out.timeout_kind)
        assert.equal("Running", instance_ids(R.never_done.id)[out.instance_id])
        -- everything overlapped: the 21 instances were running at once at the org, and the
        -- never-finishing one's 3 s deadline was not cut short
        assert.equal(21, org:stats().max_running_instances)
        assert.is_true(out.elapsed >= 3, "elapsed " .. out.elapsed)
        assert.is_nil(srv:error_log():find("ngx.sleep(0)", 1, true))
      end)
      srv:stop()
      assert(ok, err)
    end)
  end)

  describe("examples", function()
    local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

    -- Runs an example against this spec's org (its SF_* environment path), given the ids.
    local function run_example(name, fake_delay)
      delay(fake_delay)
      local q = fakeorg.shell_quote
      local cmd = ("SF_INSTANCE_URL=%s SF_ACCESS_TOKEN=%s %s examples/%s %s %s %s 2>&1"):format(
        q(org.url), q(org.token), runtime, name, R.tabular_small.id, R.summary_1.id, R.matrix.id)
      local out, ok = fakeorg.run(cmd)
      assert.is_true(ok, out)
      return out
    end

    it("async_blocking.lua waits and runs many", function()
      local out = run_example("async_blocking.lua", 0.2)
      assert.matches("Small Tabular Pipeline: 40 rows after", out, 1, true)
      assert.matches("run_many: 3 reports in", out, 1, true)
      assert.matches("3. Pipeline Matrix by Quarter (MATRIX), 600 rows", out, 1, true)
    end)

    it("async_sleep_hook.lua keeps its other tasks running while reports wait", function()
      local out = run_example("async_sleep_hook.lua", 0.4)
      local tick2 = out:find("tick 2", 1, true)
      local waited = out:find("wait:%s+Small Tabular Pipeline, 40 rows")
      assert.truthy(tick2, out)
      assert.truthy(waited, out)
      assert.is_true(tick2 < waited, out)
      assert.matches("run_many:%s+Pipeline by Stage, 120 rows", out)
      assert.matches("4 ticks ran meanwhile", out, 1, true)
    end)

    it("async_yield.lua drives waits and run_many with its own loops", function()
      local out = run_example("async_yield.lua", 0.2)
      assert.matches("one wait, %d+ sleep requests", out)
      assert.matches("3 waits together", out, 1, true)
      assert.matches("run_many %(async and sync mixed%), %d+ sleep requests", out)
      local _, rows = out:gsub("Pipeline Matrix by Quarter %(MATRIX%), 600 rows", "")
      assert.equal(2, rows)
    end)
  end)

  describe("schedule", function()
    it("starts at poll_interval and grows with the time the instance has run, up to poll_max", function()
      local o = {}
      assert.equal(async.DEFAULT_POLL_INTERVAL, async.poll_gap(0, o))
      assert.near(10 * async.GROWTH, async.poll_gap(10, o), 1e-9)
      assert.near(2, async.poll_gap(10, o), 1e-9) -- 20% of the 10 s the instance has run
      assert.equal(async.DEFAULT_POLL_MAX, async.poll_gap(1000, o))
      assert.equal(2, async.poll_gap(1000, { poll_max = 2 }))
      assert.equal(1, async.poll_gap(1, { poll_interval = 1 }))
    end)
  end)
end)
