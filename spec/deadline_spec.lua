-- Deadlines and retries (issue 15): a call's `timeout` bounds the whole call, retries
-- and backoff included; run_many retries go back into the engine with the others. Proved
-- by what the fake org saw (requests per path, requests in flight at once), never by the
-- wall clock.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"

local R = fakeorg.reports

describe("deadlines", function()
  local org

  setup(function() org = fakeorg.start() end)
  teardown(function() if org then org:stop() end end)
  before_each(function() org:reset() end)

  local function new_client(opts)
    local o = { instance_url = org.url, access_token = org.token }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(sfreports.new(o))
  end

  local function describe_path(id)
    return "/services/data/v" .. sfreports.DEFAULT_API_VERSION .. "/analytics/reports/" .. id .. "/describe"
  end

  it("a stalled GET uses the whole timeout once: no retry starts past the deadline", function()
    -- every try stalls for longer than the call may take
    org:control("fault", { kind = "stall", count = 10, seconds = 30 })
    local c = new_client({ timeout = 1, retries = 3, retry_base = 0.05 })
    local r, err = c:describe(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("timeout", err.kind)
    -- before issue 15 each of the 4 tries had its own full timeout (4 requests seen)
    assert.equal(1, org:stats().by_path[describe_path(R.tabular_small.id)])
    c:close()
  end)

  it("retries within the deadline when the first try ends early (stall timeout)", function()
    org:control("fault", { kind = "stall", count = 1, seconds = 30 })
    local c = new_client({ timeout = 20, stall_timeout = 0.5, retry_base = 0.05 })
    assert(c:describe(R.tabular_small.id))
    assert.equal(2, org:stats().by_path[describe_path(R.tabular_small.id)])
    c:close()
  end)

  it("a per-call timeout on run_sync bounds that call, retries included", function()
    org:control("fault", { kind = "stall", count = 10, seconds = 30 })
    local c = new_client({ timeout = 60, retry_base = 0.05 })
    local r, err = c:run_sync(R.tabular_small.id, { timeout = 0.8 })
    assert.is_nil(r)
    assert.equal("timeout", err.kind)
    assert.equal(R.tabular_small.id, err.report_id)
    assert.equal(1, org:stats().requests)
    c:close()
  end)

  it("numeric options that are not finite or out of range raise naming the option", function()
    local base = { instance_url = "https://x.my.salesforce.com", access_token = "tok" }
    local bad = {
      { "timeout", 0 / 0 }, { "timeout", math.huge }, { "timeout", 0 }, { "timeout", -1 },
      { "connect_timeout", 0 / 0 }, { "stall_timeout", -math.huge },
      { "max_response", 0 / 0 }, { "max_response", 1e300 }, { "max_response", 0 },
      { "retries", math.huge }, { "retries", 0 / 0 }, { "retries", 2.5 },
      { "retry_base", 0 / 0 }, { "max_concurrent_sync", 0 }, { "max_concurrent_fetch", 0 / 0 },
    }
    for _, case in ipairs(bad) do
      local o = { [case[1]] = case[2] }
      for k, v in pairs(base) do o[k] = v end
      local ok, msg = pcall(sfreports.new, o)
      assert.is_false(ok, case[1] .. " = " .. tostring(case[2]))
      assert.matches("option '" .. case[1] .. "'", msg, 1, true)
    end
  end)

  it("run_many options are checked the same way", function()
    local c = new_client()
    for _, v in ipairs({ 0, 0 / 0, -1, 1.5 }) do
      local ok, msg = pcall(c.run_many, c, { R.tabular_small.id }, { max_concurrent_sync = v })
      assert.is_false(ok)
      assert.matches("option 'max_concurrent_sync'", msg, 1, true)
    end
    c:close()
  end)

  describe("run_many", function()
    it("with retries = 0 sends each request once, all in flight together", function()
      org:control("fault", { kind = "stall", count = 8, seconds = 30 })
      local c = new_client({ timeout = 1, retries = 0 })
      local list = {}
      for i = 1, 8 do list[i] = R.tabular_small.id end
      local reports, errs = c:run_many(list, { details = false })
      for i = 1, 8 do
        assert.is_nil(reports[i])
        assert.equal("timeout", errs[i].kind)
      end
      local stats = org:stats()
      assert.equal(8, stats.requests)      -- no re-send one at a time after the batch
      assert.equal(8, stats.max_concurrent) -- all eight were waited on together
      c:close()
    end)

    it("retries failed requests concurrently, after their backoff, and they succeed", function()
      -- the first tries fail at once; the successful ones take 0.3 s each, so the fake org
      -- sees them overlap only if the retries went out together
      org:control("fault", { kind = "html502", count = 6 })
      org:control("config", { sync_delay = 0.3 })
      local c = new_client({ retry_base = 0.05 })
      local list = {}
      for i = 1, 6 do list[i] = R.tabular_small.id end
      local reports, errs, stats = c:run_many(list, { details = false })
      for i = 1, 6 do
        assert.is_nil(errs[i])
        assert.equal("TABULAR", reports[i].format)
      end
      assert.equal(12, org:stats().requests)
      assert.equal(6, stats.resent)
      assert.is_true(org:stats().max_concurrent >= 3, org:stats().max_concurrent)
      c:close()
    end)

    it("a retry never outlives the client's timeout", function()
      org:control("fault", { kind = "stall", count = 20, seconds = 30 })
      local c = new_client({ timeout = 1, retry_base = 0.05 })
      local reports, errs = c:run_many({ R.tabular_small.id, R.summary_1.id }, { details = false })
      assert.is_nil(reports[1])
      assert.equal("timeout", errs[1].kind)
      assert.equal("timeout", errs[2].kind)
      assert.equal(2, org:stats().requests)
      c:close()
    end)
  end)
end)
