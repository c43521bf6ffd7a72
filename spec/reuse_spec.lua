-- Recurring access (sfreports.reuse) over real HTTP against the fake org: run_async with
-- { reuse = seconds } reads a finished instance run with the same metadata by the same
-- user instead of starting a run, and client:latest finds it. Proved by the fake org's
-- counters (async_runs: instances created) and the requests it saw.
local fakeorg = require "fakeorg"
local sfreports = require "sfreports"
local F = require "sfreports.filters"
local reuse = require "sfreports.reuse"

local R = fakeorg.reports
local ID = R.tabular_small.id

describe("recurring access (reuse)", function()
  local org, client

  setup(function() org = fakeorg.start({}) end)
  teardown(function() if org then org:stop() end end)

  before_each(function()
    org:reset()
    assert.is_true(org:control("config", { async_delay = 0 }).ok)
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)
  after_each(function() if client then client:close() end end)

  local function runs() return org:stats().async_runs end

  -- Runs the report asynchronously (a new instance) and waits for it.
  local function finished_run(opts)
    local inst = assert(client:run_async(ID, opts))
    assert.is_nil(inst.reused)
    local report = assert(inst:wait({ timeout = 10 }))
    return inst, report
  end

  local WEB = { filters = F.eq("LEAD_SOURCE", "Web") }

  it("reuses an instance run with the same metadata: no new run", function()
    local first, report = finished_run(WEB)
    assert.equal(1, runs())
    local inst = assert(client:run_async(ID, { reuse = 300, filters = F.eq("LEAD_SOURCE", "Web") }))
    assert.is_true(inst.reused)
    assert.equal(first.id, inst.id)
    assert.equal("Success", inst.status)
    local again = assert(inst:wait())
    assert.equal(#report.raw.factMap["T!T"].rows, #again.raw.factMap["T!T"].rows)
    assert.is_true(#again.raw.factMap["T!T"].rows < R.tabular_small.rows) -- the filtered rows
    assert.equal(1, runs())
    -- a saved report run as is is reused too (compared against its describe)
    finished_run(nil)
    assert.equal(2, runs())
    local plain = assert(client:run_async(ID, { reuse = 300 }))
    assert.is_true(plain.reused)
    assert.equal(2, runs())
  end)

  it("does not reuse a run with other filters, columns or details", function()
    finished_run(WEB)
    local other = assert(client:run_async(ID, { reuse = 300, filters = F.eq("LEAD_SOURCE", "Partner") }))
    assert.is_nil(other.reused)
    assert.matches("reportFilters", tostring(other.reuse_miss))
    assert.equal(2, runs())
    local cols = assert(client:run_async(ID, { reuse = 300, filters = F.eq("LEAD_SOURCE", "Web"),
      columns = { "OPPORTUNITY_NAME" } }))
    assert.is_nil(cols.reused)
    assert.equal(3, runs())
    local nodetails = assert(client:run_async(ID, { reuse = 300, filters = F.eq("LEAD_SOURCE", "Web"),
      details = false }))
    assert.is_nil(nodetails.reused)
    assert.equal(4, runs())
    -- unfiltered: the filtered instances do not stand for the saved report
    local plain = assert(client:run_async(ID, { reuse = 300 }))
    assert.is_nil(plain.reused)
    assert.equal(5, runs())
  end)

  it("does not reuse an instance older than the window", function()
    assert.is_true(org:control("config", { instance_backdate = 3600 }).ok)
    finished_run(WEB)
    assert.is_true(org:control("config", { instance_backdate = 0 }).ok)
    local inst = assert(client:run_async(ID, { reuse = 600, filters = F.eq("LEAD_SOURCE", "Web") }))
    assert.is_nil(inst.reused)
    assert.equal(2, runs())
    -- a window that covers it: reused (the newest instance is the one just made)
    local wide = assert(client:run_async(ID, { reuse = 7200, filters = F.eq("LEAD_SOURCE", "Web") }))
    assert.is_true(wide.reused)
    assert.equal(2, runs())
  end)

  it("does not reuse another user's instance", function()
    assert.is_true(org:control("config", { instance_owner = 2 }).ok)
    finished_run(WEB)
    local inst = assert(client:run_async(ID, { reuse = 300, filters = F.eq("LEAD_SOURCE", "Web") }))
    assert.is_nil(inst.reused)
    assert.equal(2, runs())
    -- the current user was asked once (userinfo), not per call
    assert(client:run_async(ID, { reuse = 300, filters = F.eq("LEAD_SOURCE", "Web") }))
    assert.equal(1, org:stats().by_path["/services/oauth2/userinfo"])
  end)

  it("falls back to a new run when the instance has expired (404)", function()
    local first = finished_run(WEB)
    assert.is_true(org:control("fault", { kind = "not_found", path = "/instances/" .. first.id }).ok)
    local inst = assert(client:run_async(ID, { reuse = 300, filters = F.eq("LEAD_SOURCE", "Web") }))
    assert.is_nil(inst.reused)
    assert.are_not.equal(first.id, inst.id)
    assert.matches("gone", tostring(inst.reuse_miss))
    assert.equal(2, runs())
    assert(inst:wait({ timeout = 10 }))
  end)

  it("reuse = 0 never looks: no instance list is read", function()
    finished_run(WEB)
    local inst = assert(client:run_async(ID, { reuse = 0, filters = F.eq("LEAD_SOURCE", "Web") }))
    assert.is_nil(inst.reused)
    assert.equal(2, runs())
    local listed = 0
    for _, b in ipairs(org:bodies()) do
      if b.method == "GET" and b.uri:match("/instances$") then listed = listed + 1 end
    end
    assert.equal(0, listed)
  end)

  it("latest finds the newest matching instance, false when there is none", function()
    assert.is_false(client:latest(ID, { filters = F.eq("LEAD_SOURCE", "Web") }))
    finished_run(WEB)
    local second = finished_run(WEB)
    local inst, report = client:latest(ID, { filters = F.eq("LEAD_SOURCE", "Web") })
    assert.truthy(inst)
    assert.equal(second.id, inst.id)
    assert.is_true(#report.raw.factMap["T!T"].rows > 0)
    assert.is_false(client:latest(ID, { filters = F.eq("LEAD_SOURCE", "Web"), within = 1,
      owner = "005Fk00000X0009ZZZ" }))
    assert.equal(2, runs())
    assert.has_error(function() client:latest(ID, { within = -1 }) end)
    assert.has_error(function() client:run_async(ID, { reuse = "soon" }) end)
  end)

  it("compares metadata conservatively (unit)", function()
    local saved = { reportFilters = { { column = "A", operator = "equals", value = "x" } },
      detailColumns = { "A", "B" }, reportBooleanFilter = sfreports.null, hasDetailRows = false }
    local expected = reuse.expected(saved, nil, true)
    local echo = { reportFilters = { { column = "A", operator = "equals", value = "x", filterType = "fieldValue",
      isRunPageEditable = true } }, detailColumns = { "A", "B" }, reportBooleanFilter = "",
      hasDetailRows = true, groupingsDown = {}, sortBy = sfreports.null }
    assert.is_true(reuse.matches(expected, echo, nil))
    echo.detailColumns = { "B", "A" }
    assert.is_false(reuse.matches(expected, echo, nil))
    echo.detailColumns = { "A", "B" }
    -- a key the call sends that the comparison does not know: compared as it is
    local sent = { crossFilters = { { object = "x" } } }
    assert.is_false(reuse.matches(reuse.expected(saved, sent, true), echo, sent))
    assert.equal(1764602172, reuse.parse_time("2025-12-01T15:16:12Z"))
    assert.equal(1764602172, reuse.parse_time("2025-12-01T16:16:12.000+0100"))
    assert.is_nil(reuse.parse_time("yesterday"))
  end)
end)
