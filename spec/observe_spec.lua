-- observe_spec: the on_request hook, client:usage() and client:limits() (issue 22),
-- against the fake org's own request log: on both engines (libcurl here, cosockets inside
-- a real nginx running spec/support/observe_probe.lua) one info per exchange the server
-- saw, with the documented fields; retries, token renewals and run_many's requests in
-- flight each reported; a hook that raises never breaks a call; and the budget option
-- ends calls that would run past it without sending them.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local nginx = require "nginx"
local scenario = require "observe_scenario"

local R = fakeorg.reports
local IDS = { sync = R.tabular_small.id, async = R.summary_1.id }

-- The locations of the spec's nginx (nginx.start_sfreports runs sfreports in it).
local SERVER = [[
        location = /scenario { content_by_lua_block { require("observe_probe").scenario() } }
        location = /hook_raises { content_by_lua_block { require("observe_probe").hook_raises() } }
        location / { return 200 "observe\n"; }
]]

local function path_of(p) return (p:gsub("%?.*$", "")) end

local function count(list, pred)
  local n = 0
  for _, x in ipairs(list) do if pred(x) then n = n + 1 end end
  return n
end

describe("on_request, usage() and limits()", function()
  local org, srv, example

  local function stop_all()
    if example then example:stop() end
    if srv then srv:stop() end
    if org then nginx.stop_orgs({ org }) end
  end

  setup(nginx.guarded(function()
    org = fakeorg.start()
    srv = nginx.start_sfreports({ server = SERVER })
    example = nginx.start_example(org)
  end, stop_all))
  teardown(stop_all)

  before_each(function()
    org:reset()
    org:control("config", { async_delay = 0.1 })
  end)

  local function options(extra)
    local o = { instance_url = org.url, access_token = org.token }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  -- POSTs q to the probe inside nginx; the decoded answer.
  local function probe(path, q)
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "wb"))
    f:write(fakeorg.encode(q))
    f:close()
    local status, body = srv:request(path, { method = "POST", max_time = 120,
      extra = "-H 'Content-Type: application/json' --data-binary @" .. fakeorg.shell_quote(tmp) })
    os.remove(tmp)
    assert(status == 200, "probe " .. path .. ": " .. tostring(status) .. " " .. body .. "\n" .. srv:error_log())
    return fakeorg.decode(body)
  end

  local ENGINES = {
    libcurl = function() return scenario.run(sfreports, options(), IDS) end,
    cosocket = function() return probe("/scenario", { opts = options(), ids = IDS }) end,
  }

  for _, engine in ipairs({ "libcurl", "cosocket" }) do
    it("reports every exchange the server saw, with the documented fields (" .. engine .. ")", function()
      local out = ENGINES[engine]()
      local stats = org:stats()
      assert.equal(engine == "libcurl" and "curl" or "ngx", out.engine)
      for _, s in ipairs(out.steps) do assert.is_true(s.ok, s.name .. ": " .. tostring(s.err)) end
      local infos, usage = out.infos, out.usage
      -- one info per request the server received, path by path
      assert.equal(stats.requests, #infos)
      assert.equal(stats.requests, usage.requests)
      local by_path = {}
      for _, info in ipairs(infos) do
        local p = path_of(info.path)
        by_path[p] = (by_path[p] or 0) + 1
      end
      assert.same(stats.by_path, by_path)
      local bytes_in, bytes_out = 0, 0
      for _, info in ipairs(infos) do
        assert.matches("^/services/data/v%d+%.%d/", info.path)
        assert.is_truthy(({ GET = true, POST = true, DELETE = true })[info.method], info.method)
        assert.equal(200, info.status)
        assert.is_false(info.has_error_field)
        assert.equal(1, info.attempt)
        assert.equal(4, info.max_attempts)
        assert.is_number(info.elapsed)
        assert.is_true(info.elapsed >= 0 and info.elapsed < 60)
        assert.is_true(info.bytes_in > 100, info.path)
        assert.is_true(info.bytes_out > 50, info.path)
        assert.is_boolean(info.connection_reused)
        assert.equal(15000, info.limits.max)
        assert.is_nil(info.retry_in)
        assert.is_nil(info.hook_error)
        bytes_in, bytes_out = bytes_in + info.bytes_in, bytes_out + info.bytes_out
        if info.op == "run_sync" or info.op == "run_async" or info.op == "poll" or info.op == "describe" then
          assert.is_truthy(info.report_id == IDS.sync or info.report_id == IDS.async, info.path)
        end
        if info.op == "poll" then
          assert.is_truthy(stats.instance_polls[info.instance_id], info.instance_id)
        end
      end
      assert.equal(bytes_in, usage.bytes_in)
      assert.equal(bytes_out, usage.bytes_out)
      -- the api usage the last answer carried is what /limits reported
      assert.equal(15000 - out.limits.daily.Remaining, infos[#infos].limits.used)
      assert.equal(infos[#infos].limits.used, usage.api_usage.used)
      -- runs and polls, as the server counted them
      local polls = 0
      for _, n in pairs(stats.instance_polls) do polls = polls + n end
      assert.equal(2, stats.sync_runs)
      assert.equal(2, stats.async_runs)
      assert.equal(stats.sync_runs, count(infos, function(i) return i.op == "run_sync" end))
      assert.equal(stats.async_runs, count(infos, function(i) return i.op == "run_async" end))
      assert.equal(polls, count(infos, function(i) return i.op == "poll" end))
      assert.same({ sync = stats.sync_runs, async = stats.async_runs }, usage.runs)
      assert.equal(polls, usage.polls)
      assert.same({ count = stats.sync_runs, limit = 500 }, usage.last_hour.sync_runs)
      assert.same({ count = stats.async_runs, limit = 1200 }, usage.last_hour.async_runs)
      assert.same({ Max = 500, Remaining = 500 - stats.sync_runs }, out.limits.sync)
      assert.same({ Max = 1200, Remaining = 1200 - stats.async_runs }, out.limits.async)
      assert.equal(0, usage.retries)
      assert.equal(0, usage.renewals)
      -- connections: each one the client opened is one the server saw (cosocket pools
      -- may bring one opened before the reset)
      local opened = count(infos, function(i) return not i.connection_reused end)
      assert.is_true(opened >= 1 or engine == "cosocket")
      if engine == "libcurl" then assert.equal(stats.connections, opened) else
        assert.is_true(opened <= stats.connections)
      end
      assert.is_true(count(infos, function(i) return i.connection_reused end) >= 1)
    end)
  end

  it("reports each try of a retried call, saying when it goes again", function()
    org:control("fault", { kind = "html502", count = 1, path = "/reports/" .. IDS.sync })
    local infos = {}
    local c = assert(sfreports.new(options({ retry_base = 0.01,
      on_request = function(info) infos[#infos + 1] = info end })))
    assert(c:run_sync(IDS.sync))
    assert.equal(2, #infos)
    assert.equal(2, org:stats().requests)
    assert.equal(502, infos[1].status)
    assert.equal("http", infos[1].error.kind)
    assert.equal(1, infos[1].attempt)
    assert.is_number(infos[1].retry_in)
    assert.equal(200, infos[2].status)
    assert.equal(2, infos[2].attempt)
    assert.is_nil(infos[2].retry_in)
    local u = c:usage()
    assert.equal(1, u.retries)
    assert.equal(1, u.failures)
    -- the 502 was not a run the org accepted
    assert.same({ sync = 1, async = 0 }, u.runs)
    c:close()
  end)

  it("reports run_many's requests in flight and their retries", function()
    org:control("fault", { kind = "html502", count = 1, path = "/reports/" .. IDS.sync })
    local infos = {}
    local c = assert(sfreports.new(options({ retry_base = 0.01,
      on_request = function(info) infos[#infos + 1] = info end })))
    local reports, errs = c:run_many({ IDS.sync, IDS.sync, { id = IDS.async, async = true } },
      { poll_interval = 0.05, poll_max = 0.05 })
    assert.is_truthy(reports[1] and reports[2] and reports[3], tostring(errs[1] or errs[2] or errs[3]))
    local stats = org:stats()
    assert.equal(stats.requests, #infos)
    local retried = count(infos, function(i) return i.retry_in ~= nil end)
    assert.equal(1, retried)
    assert.equal(1, count(infos, function(i) return i.status == 502 end))
    assert.equal(1, count(infos, function(i) return i.attempt == 2 and i.status == 200 end))
    local u = c:usage()
    assert.equal(stats.requests, u.requests)
    assert.equal(1, u.retries)
    assert.same({ sync = stats.sync_runs, async = stats.async_runs }, u.runs)
    c:close()
  end)

  it("reports a token renewal: the refused request, the token request, the request again", function()
    local infos = {}
    local c = assert(sfreports.new({ auth = { flow = "refresh_token", client_id = "cid-observe",
      refresh_token = "rt-observe-secret", login_url = org.url },
      on_request = function(info) infos[#infos + 1] = info end }))
    org:control("expire_tokens")
    assert(c:run_sync(IDS.sync))
    local ops, statuses = {}, {}
    for i, info in ipairs(infos) do ops[i], statuses[i] = info.op, info.status end
    assert.same({ "token", "run_sync", "token", "run_sync" }, ops)
    assert.same({ 200, 401, 200, 200 }, statuses)
    assert.equal("/services/oauth2/token", infos[1].path)
    assert.is_true(infos[2].renewing)
    assert.equal(2, infos[4].attempt)
    assert.equal(org:stats().requests, #infos)
    local u = c:usage()
    assert.equal(1, u.renewals)
    assert.equal(2, u.token_requests)
    assert.equal(4, u.requests)
    c:close()
  end)

  it("a hook that raises breaks no call; its error comes back once in the next info", function()
    local infos, n = {}, 0
    local c = assert(sfreports.new(options({ on_request = function(info)
      n = n + 1
      infos[n] = info
      if n == 1 then error("first call fails, token " .. org.token) end
    end })))
    assert(c:run_sync(IDS.sync))
    assert(c:describe(IDS.sync))
    assert(c:list_reports())
    assert.equal(3, n)
    assert.is_nil(infos[1].hook_error)
    assert.matches("first call fails", infos[2].hook_error, 1, true)
    assert.matches("[secret]", infos[2].hook_error, 1, true)
    assert.is_nil(infos[2].hook_error:find(org.token, 1, true))
    assert.is_nil(infos[3].hook_error)
    local u = c:usage()
    assert.equal(1, u.hook_errors)
    assert.equal(infos[2].hook_error, u.last_hook_error)
    c:close()
  end)

  it("a hook that always raises breaks neither a call nor run_many (cosocket engine, in the request's context)",
    function()
      local out = probe("/hook_raises", { opts = options(), ids = IDS })
      assert.is_true(out.ok, out.err)
      assert.is_true(out.many)
      assert.equal(3, out.calls)
      assert.equal(org:stats().requests, out.calls)
      assert.equal(out.calls, out.hook_errors)
      assert.is_nil(out.seen[1].hook_error)
      assert.matches("hook failed on purpose #1", out.seen[2].hook_error, 1, true)
      for _, s in ipairs(out.seen) do assert.equal("/hook_raises", s.uri) end
      assert.matches("#3", out.last_hook_error, 1, true)
    end)

  it("the nginx example logs a JSON line per failed exchange, from the request it served", function()
    org:control("fault", { kind = "html502", count = 1, path = "/reports/" .. IDS.sync })
    local status, body = example:request("/reports/" .. IDS.sync .. ".csv")
    assert.equal(200, status, body)
    assert.equal(2, org:stats().requests)
    local lines = {}
    for json_text in example:error_log():gmatch("sfreports (%b{})") do
      lines[#lines + 1] = fakeorg.decode(json_text)
    end
    -- error_log warn: the 502 (a problem) is logged, the 200 that followed (INFO) is not
    assert.equal(1, #lines)
    local rec = lines[1]
    assert.equal(502, rec.status)
    assert.equal("http", rec.error)
    assert.equal("GET", rec.method)
    assert.equal("run_sync", rec.op)
    assert.equal(IDS.sync, rec.report_id)
    assert.is_number(rec.retry_in)
    assert.equal(1, rec.attempt)
    assert.equal("/reports/" .. IDS.sync .. ".csv", rec.request)
    assert.matches("^%x+$", rec.request_id)
    assert.is_nil(example:error_log():find(org.token, 1, true))
  end)

  it("usage() works without a hook and counts what the server counted", function()
    local c = assert(sfreports.new(options()))
    assert(c:run_sync(IDS.sync))
    local inst = assert(c:run_async(IDS.async))
    assert(c:wait(inst, { poll_interval = 0.05, poll_max = 0.05 }))
    local stats = org:stats()
    local u = c:usage()
    assert.equal(stats.requests, u.requests)
    assert.same({ sync = 1, async = 1 }, u.runs)
    local polls = 0
    for _, k in pairs(stats.instance_polls) do polls = polls + k end
    assert.equal(polls, u.polls)
    assert.is_true(u.bytes_in > 0 and u.bytes_out > 0)
    assert.equal(0, u.hook_errors)
    c:close()
  end)

  it("the Sforce-Limit-Info of the last answer: client.limit_info and usage(), read when asked", function()
    local c = assert(sfreports.new(options()))
    assert(c:list_reports())
    local used_before = c.limit_info["api-usage"].used
    assert(c:list_reports())
    local li = c.limit_info
    assert.is_string(li.raw)
    local used, max = li.raw:match("api%-usage=(%d+)/(%d+)")
    assert.equal(tonumber(used), li["api-usage"].used) -- parsed from this answer's header
    assert.equal(tonumber(max), li["api-usage"].max)
    assert.is_true(li["api-usage"].used > used_before)
    assert.same({ used = li["api-usage"].used, max = li["api-usage"].max }, c:usage().api_usage)
    -- the lazy table iterates like the parsed one (after a first read on Lua 5.1/LuaJIT)
    local names = {}
    for k in pairs(li) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ "api-usage", "raw" }, names)
    assert.same(require("sfreports.client").parse_limit_info(li.raw), (function()
      local t = {}
      for k, v in pairs(li) do t[k] = v end
      return t
    end)())
    c:close()
  end)

  it("budget: a call that would start past it fails without sending anything", function()
    org:control("config", { sync_delay = 0.3 })
    local infos = {}
    local c = assert(sfreports.new(options({ budget = 1, retries = 0,
      on_request = function(info) infos[#infos + 1] = info end })))
    local last, calls = nil, 0
    for _ = 1, 30 do -- without the budget, all 30 would succeed
      calls = calls + 1
      local r, err = c:run_sync(IDS.sync)
      if not r and err.budget then
        last = err
        break
      end
    end
    assert.is_truthy(last, "no call failed on the budget")
    assert.equal("timeout", last.kind)
    assert.equal(1, last.budget)
    assert.matches("budget of 1s", last.message, 1, true)
    assert.is_true(calls < 30)
    -- the failing call sent nothing: one exchange per earlier call, as the server saw
    assert.equal(calls - 1, #infos)
    assert.equal(#infos, org:stats().requests)
    c:close()
  end)

  it("misuse of the options raises naming them", function()
    assert.has_error(function() sfreports.new(options({ on_request = 1 })) end,
      "sfreports: option 'on_request' for sfreports.new must be a function, got number")
    assert.has_error(function() sfreports.new(options({ budget = -1 })) end)
    assert.has_error(function() sfreports.new(options({ budget = 0 / 0 })) end)
  end)
end)
