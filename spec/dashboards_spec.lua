-- luacheck: std +busted
-- Dashboards (sfreports.dashboards) over real HTTP against the fake org: every client
-- method and error, filters resolved by label through the cached metadata, components as
-- report objects with per-component errors, refresh + wait (blocking, a user sleep,
-- yield), "already in progress", the hourly limit, ids checked before any request, and
-- the docs fixtures served over HTTP. What the fake org saw (its dashboard request log)
-- is the proof; no wall-clock assertion.
local sfreports = require "sfreports"
local f = require "sfreports.filters"
local core = require "sfreports.core"
local cjson = require "cjson"
local fakeorg = require "fakeorg"

local R = fakeorg.reports
local null = sfreports.null

local SALES = "01ZFk00000G0001MAB"
local TEAM1 = "01ZFk00000G0101MAB"
local C = { stage = "01aFk00000H0001IAB", matrix = "01aFk00000H0002IAB", deals = "01aFk00000H0003IAB",
  slow = "01aFk00000H0004IAB" }
local EMEA = "Deutschland,Schweiz,UK,Polska"
local OWNER1 = "005Fk0000000001IAA" -- the fake org's first owner (Ana García)

local load_fixture = require("fixtures").load

describe("dashboards", function()
  local org, client

  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)
  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)
  before_each(function()
    org:reset()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)

  -- The fake org's dashboard request log, optionally only entries of one kind.
  local function seen(what)
    local out = {}
    for _, e in ipairs(org:stats().dashboard_log) do
      if what == nil or e.what == what then out[#out + 1] = e end
    end
    return out
  end

  local function requests() return org:stats().requests end

  describe("list", function()
    it("lists id, name, url and status_url with the raw entry", function()
      local list = assert(client:dashboards())
      assert.equal(7, #list)
      assert.equal(SALES, list[1].id)
      assert.equal("Sales Overview", list[1].name)
      assert.equal("/services/data/v67.0/analytics/dashboards/" .. SALES, list[1].url)
      assert.equal(list[1].url .. "/status", list[1].status_url)
      assert.equal(list[1].name, list[1].raw.name)
    end)
  end)

  describe("results", function()
    it("turns components into report objects; the failing one has a structured error", function()
      local d = assert(client:dashboard(SALES))
      assert.equal(SALES, d.id)
      assert.equal("Sales Overview", d.name)
      assert.equal(4, #d.components)
      local stage, matrix, deals, slow = d.components[1], d.components[2], d.components[3], d.components[4]
      assert.same({ C.stage, "Pipeline by Stage", "Report", "Bar", R.summary_1.id },
        { stage.id, stage.title, stage.type, stage.visualization, stage.report_id })
      assert.same({ data_status = "DATA", refresh_status = "IDLE", refresh_date = "2026-01-05T08:00:00.000+0000" },
        { data_status = stage.status.data_status, refresh_status = stage.status.refresh_status,
          refresh_date = stage.status.refresh_date })
      assert.equal("SUMMARY", stage.report.format)
      assert.equal("MATRIX", matrix.report.format)
      assert.equal("TABULAR", deals.report.format)
      assert.equal(R.tabular_small.rows, deals.report:row_count())
      assert.equal(R.summary_1.rows, stage.report:total("RowCount").value)
      assert.equal(R.matrix.rows, matrix.report:total("RowCount").value)
      for _, c in ipairs({ stage, matrix, deals }) do assert.is_nil(c.error) end
      -- one failed component never fails the call
      assert.is_nil(slow.report)
      assert.equal("api", slow.error.kind)
      assert.equal("302", slow.error.code)
      assert.equal("Warning", slow.error.severity)
      assert.equal(C.slow, slow.error.component_id)
      assert.equal(SALES, slow.error.dashboard_id)
      assert.truthy(tostring(slow.error):find("exceeded the time limit", 1, true))
      assert.same({ slow }, d:failed())
      -- by id (18 or 15 characters) or title (any case)
      assert.equal(deals, d:component(C.deals))
      assert.equal(deals, d:component(C.deals:sub(1, 15)))
      assert.equal(matrix, d:component("pipeline matrix"))
      assert.is_nil(d:component("nope"))
      assert.equal("Ana García", d.running_user.display_name)
      assert.equal(d.raw.dashboardMetadata, d.metadata)
    end)

    it("gives the same rows and totals as reading the JSON by hand", function()
      local d = assert(client:dashboard(SALES))
      -- an independent reading: the same resource fetched with curl and decoded here
      local body = fakeorg.run(("curl -s -H %s %s"):format(fakeorg.shell_quote("Authorization: Bearer " .. org.token),
        fakeorg.shell_quote(org:api("67.0") .. "/dashboards/" .. SALES)))
      local raw = cjson.decode(body)
      local deals_raw = raw.componentData[3].reportResult.factMap["T!T"].rows
      local i = 0
      for row in d:component(C.deals).report:rows() do
        i = i + 1
        for j, cell in ipairs(deals_raw[i].dataCells) do assert.equal(cell.label, row.cells[j].label) end
      end
      assert.equal(#deals_raw, i)
      -- the summary: each stage's count adds up to the grand total Salesforce computed
      local fm, sum, n = raw.componentData[1].reportResult.factMap, 0, 0
      for key, e in pairs(fm) do
        if key ~= "T!T" then
          sum, n = sum + e.aggregates[2].value, n + 1
          assert.equal(e.aggregates[2].value, d:component(C.stage).report:group(key).aggregates.RowCount.value)
        end
      end
      assert.equal(fm["T!T"].aggregates[2].value, sum)
      assert.equal(sum, d:component(C.stage).report:total("RowCount").value)
      -- the component table writes one line per fact-map entry (groups, then aggregates)
      local lines = {}
      assert(require("sfreports.writers").csv(d:component(C.stage):table(), function(s)
        for l in s:gmatch("[^\n]+") do lines[#lines + 1] = l end
      end))
      assert.equal(n + 2, #lines) -- header, every stage, the total
      assert.equal("Stage,Sum of Amount,Record Count", lines[1])
    end)

    it("resolves filters by label or name and option alias, label or id, fetching the metadata once", function()
      local d = assert(client:dashboard(SALES, { filters = { Region = "EMEA", ["deal size"] = "Large" } }))
      assert.same({ filter1 = "0ICFk00000I0001OAB", filter2 = "0ICFk00000I0011OAB" }, d.selected)
      local results = seen("results")
      assert.equal("filter1=0ICFk00000I0001OAB&filter2=0ICFk00000I0011OAB", results[#results].args)
      -- what the org applied equals the same filters run on the report itself
      local direct = assert(client:run_sync(R.tabular_small.id, { filters = f.all{
        f.eq("BILLING_COUNTRY", f.raw(EMEA)), f.gt("AMOUNT", 100000) } }))
      assert.equal(direct:row_count(), d:component(C.deals).report:row_count())
      assert.is_true(direct:row_count() < R.tabular_small.rows)
      -- by name ("AMOUNT"), by position, by option value, by option id (15 characters)
      local same = {
        { Region = "emea", AMOUNT = "large" }, { filter1 = "0ICFk00000I0001", filter2 = "Large" },
        { [" REGION "] = " Emea " , AMOUNT = "0ICFk00000I0011OAB" },
      }
      for _, filters in ipairs(same) do
        assert.same(d.selected, assert(client:dashboard(SALES, { filters = filters })).selected)
      end
      assert.equal("0ICFk00000I0012OAB", assert(client:dashboard(SALES, { filters = { ["Deal Size"] = "10000" } }))
        .selected.filter2)
      assert.equal(1, #seen("describe")) -- fetched once, then cached
    end)

    it("refuses an unknown filter or option, naming what exists, before any results request", function()
      assert(client:describe_dashboard(SALES))
      local before = requests()
      local d, err = client:dashboard(SALES, { filters = { Regoin = "EMEA" } })
      assert.is_nil(d)
      assert.equal("invalid", err.kind)
      assert.equal('dashboard 01ZFk00000G0001MAB has no filter "Regoin"; its filters: "Region", "Deal Size"',
        err.message)
      d, err = client:dashboard(SALES, { filters = { Region = "Mars" } })
      assert.is_nil(d)
      assert.equal('dashboard filter "Region" has no option "Mars"; its options: "EMEA", "Americas", "APAC"',
        err.message)
      d, err = client:dashboard(SALES, { filters = { Region = "EMEA", filter1 = "APAC" } })
      assert.is_nil(d)
      assert.truthy(err.message:find("given twice", 1, true))
      d, err = client:dashboard(TEAM1, { filters = { Region = "EMEA" } })
      assert.is_nil(d)
      assert.truthy(err.message:find("its filters: none", 1, true))
      assert.equal(before + 1, requests()) -- only TEAM1's describe
      assert.equal(0, #seen("results"))
      assert.has_error(function() client:dashboard(SALES, { filters = { Region = 1 } }) end)
      assert.has_error(function() client:dashboard(SALES, { filtres = {} }) end,
        "sfreports: unknown option 'filtres' for client:dashboard")
    end)

    it("runs as another user, and reads only some components (POST componentIds)", function()
      local d = assert(client:dashboard(SALES, { running_user = OWNER1 }))
      assert.equal("runningUser=" .. OWNER1, seen("results")[1].args)
      assert.equal(OWNER1, d.running_user.id)
      local deals = d:component(C.deals).report
      assert.is_true(deals:row_count() > 0 and deals:row_count() < R.tabular_small.rows)
      for row in deals:rows() do assert.equal("Ana García", row:label("FULL_NAME")) end
      -- a dashboard whose running user cannot change: the org's 400
      local _, err = client:dashboard(TEAM1, { running_user = OWNER1 })
      assert.equal("api", err.kind)
      assert.equal(400, err.status)
      assert.equal(TEAM1, err.dashboard_id)
      d = assert(client:dashboard(SALES, { components = { C.matrix, C.slow:sub(1, 15) } }))
      assert.equal(2, #d.components)
      assert.same({ C.matrix, C.slow }, { d.components[1].id, d.components[2].id })
      assert.equal("components", seen()[#seen()].what)
      assert.equal("POST", seen()[#seen()].method)
    end)

    it("checks every id before any request", function()
      local before = requests()
      local cases = {
        { "dashboard", "00OFk00000A0001MAB", "must start with 01Z" },
        { "dashboard", "01ZFk00000G0001MAC", "wrong case-checksum" },
        { "dashboard", "01ZFk00000G001", "15 or 18 characters" },
        { "dashboard_status", "01Z/../x", "15 or 18" },
        { "refresh_dashboard", "01ZfK00000G0001MAB", "wrong case-checksum" },
        { "describe_dashboard", 42, "must be a string" },
        { "delete_dashboard", "01ZFk00000G0001MBB", "wrong case-checksum" },
      }
      for _, case in ipairs(cases) do
        local v, err = client[case[1]](client, case[2])
        assert.is_nil(v, case[1])
        assert.equal("invalid", err.kind)
        assert.truthy(err.message:find(case[3], 1, true), err.message)
      end
      local _, err = client:dashboard(SALES, { running_user = "006Fk0000000001IAA" })
      assert.equal("running_user", err.option)
      _, err = client:dashboard(SALES, { components = { "01aFk00000H0001IBB" } })
      assert.equal("components", err.option)
      _, err = client:save_dashboard("01ZFk00000G0001MA", { name = "x" })
      assert.equal("invalid", err.kind)
      assert.equal(before, requests())
      -- a 15-character id is accepted as it is
      assert.equal(SALES, assert(client:dashboard(SALES:sub(1, 15))).id)
    end)

    it("gives an api error for an unknown dashboard, and decode errors for bad shapes", function()
      local _, err = client:dashboard("01ZFk00000G0999MAB")
      assert.same({ "api", 404, "NOT_FOUND", "01ZFk00000G0999MAB" },
        { err.kind, err.status, err.code, err.dashboard_id })
      for _, body in ipairs({ "null", "[]", "{}", '{"componentData":5,"dashboardMetadata":{}}',
          '{"dashboardMetadata":"x"}', '"x"' }) do
        org:control("fault", { kind = "body", body = body, path = "/dashboards/" })
        local d, derr = client:dashboard(SALES)
        assert.is_nil(d, body)
        assert.equal("decode", derr.kind, body)
      end
      -- a component whose reportResult is not a report: that component fails, not the call
      local good = cjson.decode((fakeorg.run(("curl -s -H %s %s"):format(
        fakeorg.shell_quote("Authorization: Bearer " .. org.token),
        fakeorg.shell_quote(org:api() .. "/dashboards/" .. SALES)))))
      good.componentData[1].reportResult = { factMap = "no" }
      good.componentData[2] = 7
      org:control("fault", { kind = "body", body = cjson.encode(good), path = "/dashboards/" })
      local d = assert(client:dashboard(SALES))
      assert.equal("decode", d.components[1].error.kind)
      assert.equal(C.stage, d.components[1].error.component_id)
      assert.equal("decode", d.components[2].error.kind)
      assert.is_nil(d.components[3].error)
      assert.equal(3, #d:failed())
      for _, body in ipairs({ "{}", '{"componentStatus":[1]}', "null" }) do
        org:control("fault", { kind = "body", body = body, path = "/status" })
        local s, serr = client:dashboard_status(SALES)
        assert.is_nil(s)
        assert.equal("decode", serr.kind)
      end
      org:control("fault", { kind = "body", body = '[{"id":3}]', path = "/dashboards$" })
      local list, lerr = client:dashboards()
      assert.is_nil(list)
      assert.equal("decode", lerr.kind)
    end)
  end)

  describe("refresh", function()
    local function delay(s) org:control("config", { dashboard_refresh_delay = s }) end

    it("waits (blocking) until every component is IDLE and returns the refreshed dashboard", function()
      delay(0.6)
      local h = assert(client:refresh_dashboard(SALES))
      assert.equal("RUNNING", h.status)
      assert.equal("/services/data/v67.0/analytics/dashboards/" .. SALES .. "/status", h.status_url)
      assert.is_false(h.already_running)
      local d = assert(h:wait({ timeout = 30 }))
      assert.equal(4, #d.components)
      assert.equal("IDLE", h.status)
      assert.is_true(h.polls >= 2)
      for _, c in ipairs(d.components) do
        assert.equal("IDLE", c.status.refresh_status)
        assert.are_not.equal("2026-01-05T08:00:00.000+0000", c.status.refresh_date)
      end
      -- what the org saw: the PUT, polls while RUNNING, one when IDLE, then the results
      local log = seen()
      assert.equal("refresh", log[1].what)
      assert.equal("PUT", log[1].method)
      assert.is_true(log[2].running)
      assert.equal("status", log[#log - 1].what)
      assert.is_false(log[#log - 1].running)
      assert.equal("results", log[#log].what)
      assert.equal(h.polls, #seen("status"))
    end)

    it("polls once without waiting, like a report instance", function()
      delay(0.4)
      local h = assert(client:refresh_dashboard(SALES))
      local same, d = h:poll()
      assert.equal(h, same)
      assert.is_nil(d)
      assert.equal("RUNNING", h.status)
      assert.equal(4, #h.components)
      assert.equal("RUNNING", h.components[1].refresh_status)
      core.sleep(0.5)
      same, d = h:poll()
      assert.equal(h, same)
      assert.equal(SALES, d.id)
      local st = assert(client:dashboard_status(SALES))
      assert.is_false(st.running)
      assert.equal(C.stage, st.components[1].id)
      assert.equal("IDLE", st.components[1].refresh_status)
    end)

    it("waits on a refresh already in progress instead of failing", function()
      -- the first refresh runs until the second PUT has met it, however slow the run
      org:control("config", { dashboard_refresh_delay = 0.5, dashboard_refresh_gate = 2 })
      local first = assert(client:refresh_dashboard(SALES))
      local second = assert(client:refresh_dashboard(SALES))
      assert.is_false(first.already_running)
      assert.is_true(second.already_running)
      assert(second:wait())
      assert.equal(2, #seen("refresh"))
      assert.equal(1, #seen("results"))
    end)

    it("refreshes with filters: the PUT, polls and results carry them", function()
      delay(0.3)
      local h = assert(client:refresh_dashboard(SALES, { filters = { Region = "APAC" } }))
      local d = assert(h:wait())
      local want = "filter1=0ICFk00000I0003OAB"
      assert.equal(want, seen("refresh")[1].args)
      for _, e in ipairs(seen("status")) do assert.equal(want, e.args) end
      assert.equal(want, seen("results")[1].args)
      assert.is_true(d:component(C.deals).report:row_count() < R.tabular_small.rows)
    end)

    it("gives a `limit` error past the hourly refresh limit", function()
      org:control("config", { dashboard_refresh_limit = 1, dashboard_refresh_delay = 0.1 })
      assert(assert(client:refresh_dashboard(TEAM1)):wait())
      local h, err = client:refresh_dashboard(TEAM1)
      assert.is_nil(h)
      assert.equal("limit", err.kind)
      assert.equal(400, err.status)
      assert.equal(TEAM1, err.dashboard_id)
      assert.truthy(err.message:find("per hour", 1, true))
      assert.equal(2, #seen("refresh")) -- not retried
    end)

    it("stops at the deadline with a `timeout` error keeping the dashboard id", function()
      delay(30)
      local h = assert(client:refresh_dashboard(TEAM1))
      local d, err = h:wait({ timeout = 0.7, poll_interval = 0.1 })
      assert.is_nil(d)
      assert.equal("timeout", err.kind)
      assert.equal(TEAM1, err.dashboard_id)
      assert.is_true(err.retryable)
      assert.is_true(#seen("status") >= 2)
      assert.equal(0, #seen("results"))
    end)

    it("sleeps with a user sleep function, on the async schedule", function()
      delay(0.5)
      local slept = {}
      local h = assert(client:refresh_dashboard(SALES))
      local d = assert(h:wait({ sleep = function(s) slept[#slept + 1] = s; core.sleep(s) end, poll_interval = 0.2 }))
      assert.equal(SALES, d.id)
      assert.equal(#seen("status"), #slept)
      for _, s in ipairs(slept) do assert.is_true(s >= 0.001 and s <= 0.2 * 1.1 + 1e-9, tostring(s)) end
    end)

    it("yields { sfreports = 'sleep' } to the caller's loop with yield = true", function()
      delay(0.5)
      local co = coroutine.create(function()
        local h = assert(client:refresh_dashboard(TEAM1))
        return h:wait({ yield = true })
      end)
      local yields, res = 0, { coroutine.resume(co) }
      while coroutine.status(co) ~= "dead" do
        assert.is_true(res[1], tostring(res[2]))
        assert.equal("sleep", res[2].sfreports)
        yields = yields + 1
        core.sleep(res[2].seconds)
        res = { coroutine.resume(co) }
      end
      assert.is_true(res[1], tostring(res[2]))
      assert.equal(TEAM1, res[2].id)
      assert.equal(#seen("status"), yields)
      assert.has_error(function() assert(client:refresh_dashboard(TEAM1)):wait({ yield = true }) end)
    end)
  end)

  describe("describe, clone, save, delete", function()
    it("describes, caching on request", function()
      local md = assert(client:describe_dashboard(SALES))
      assert.equal(SALES, md.id)
      assert.equal(2, #md.filters)
      assert.equal(md, assert(client:describe_dashboard(SALES, { cached = true })))
      assert(client:describe_dashboard(SALES))
      assert.equal(2, #seen("describe"))
    end)

    it("clones, saves a name and sticky filters, and deletes", function()
      local copy = assert(client:clone_dashboard(SALES, "Sales (copy)"))
      assert.equal("01Z", copy.id:sub(1, 3))
      assert.are_not.equal(SALES, copy.id)
      assert.equal("Sales (copy)", copy.name)
      assert.equal(SALES, copy.source_id)
      local names = {}
      for _, d in ipairs(assert(client:dashboards())) do names[d.id] = d.name end
      assert.equal("Sales (copy)", names[copy.id])
      local saved = assert(client:save_dashboard(copy.id, { name = "EMEA Sales", filters = { Region = "EMEA" } }))
      assert.equal("EMEA Sales", saved.name)
      assert.equal("isStickyFilterSave=true&filter1=0ICFk00000I0001OAB", seen("save")[1].args)
      -- the sticky filter applies when the dashboard is read without filters
      local d = assert(client:dashboard(copy.id))
      assert.equal("0ICFk00000I0001OAB", d.metadata.filters[1].selectedOption)
      local plain = assert(client:dashboard(SALES))
      assert.equal(null, plain.metadata.filters[1].selectedOption)
      assert.is_true(d:component(C.deals).report:row_count() < plain:component(C.deals).report:row_count())
      assert.is_true(assert(client:delete_dashboard(copy.id)))
      local gone, err = client:dashboard(copy.id)
      assert.is_nil(gone)
      assert.equal(404, err.status)
      gone, err = client:delete_dashboard(copy.id)
      assert.is_nil(gone)
      assert.equal(404, err.status)
      assert.has_error(function() client:save_dashboard(SALES, {}) end)
      assert.has_error(function() client:clone_dashboard(SALES, 5) end)
      local bad = select(2, client:save_dashboard(SALES, { name = "" }))
      assert.equal("api", bad.kind)
    end)
  end)

  describe("the docs examples over HTTP", function()
    it("parse the documented results, list, status and refresh answers", function()
      local _, results = load_fixture("dashboard_results_docs.json")
      local _, list = load_fixture("dashboard_list_docs.json")
      local _, status = load_fixture("dashboard_status_docs.json")
      local _, put = load_fixture("dashboard_refresh_put_docs.json")
      local ID = "01ZD00000007S89MAE"
      org:control("fault", { kind = "body", body = results, path = "/dashboards/" .. ID .. "$" })
      local d = assert(client:dashboard(ID))
      assert.equal("Simple Dashboard", d.name)
      assert.equal(1, #d.components)
      local c = d.components[1]
      assert.same({ "01aD0000000a36LIAQ", "Metric", "00OD0000001g2nWMAQ", "Simple Test" },
        { c.id, c.visualization, c.report_id, c.label })
      assert.is_nil(c.title)
      assert.equal("Allison Wheeler", d.running_user.display_name)
      assert.equal("Amount", d.filters[1].label)
      assert.equal("USD 2000000", d.filters[1].options[1].label)
      -- independent reading: the three groups of the JSON add up to its grand total
      local raw = cjson.decode(results).componentData[1].reportResult.factMap
      local sum = 0
      for _, key in ipairs({ "0!T", "1!T", "2!T" }) do
        local v = c.report:group(key).aggregates["s!AMOUNT"].value
        assert.equal(raw[key].aggregates[1].value, v)
        sum = sum + v
      end
      assert.is_true(math.abs(sum - c.report:total("s!AMOUNT").value) < 0.01)
      local lines = {}
      assert(require("sfreports.writers").csv(c:table(), function(s) lines[#lines + 1] = s end))
      assert.equal("Type,Sum of Amount\n,\"USD 10,083.33\"\nExisting Business,\"USD 25,016,768.67\"\n"
        .. "New Business,\"USD 42,016,513.50\"\n,\"USD 67,043,365.50\"\n", table.concat(lines))
      org:control("fault", { kind = "body", body = list, path = "/dashboards$" })
      local l = assert(client:dashboards())
      assert.same({ "01ZD00000007QeuMAE", "Adoption Dashboard",
        "/services/data/v35.0/analytics/dashboards/01ZD00000007QeuMAE/status" },
        { l[1].id, l[1].name, l[1].status_url })
      org:control("fault", { kind = "body", body = status, path = "/status$" })
      local st = assert(client:dashboard_status(ID))
      assert.same({ "01aD0000000J7M7", "IDLE", "2014-03-10T17:26:07.000+0000" },
        { st.components[1].id, st.components[1].refresh_status, st.components[1].refresh_date })
      assert.is_false(st.running)
      org:control("fault", { kind = "body", body = put, path = "/dashboards/" .. ID .. "$" })
      local h = assert(client:refresh_dashboard(ID))
      assert.equal("/services/data/v31.0/analytics/dashboards/01ZD00000007S89MAE/status", h.status_url)
    end)
  end)
end)

describe("dashboards without a server", function()
  local dfilters = require "sfreports.dashboards.filters"
  local model = require "sfreports.dashboards.model"

  local META = { filters = {
    { name = "Stage", options = {
      { id = "0ICFk00000I0101OAB", alias = cjson.null, value = "Won" },
      { id = "0ICFk00000I0102OAB", alias = "Won", value = "Won" },
      { id = "0ICFk00000I0103OAB", alias = cjson.null, operation = "between", startValue = "1", endValue = "9" },
    } },
    "not a filter",
    { name = "Owner", label = "Account Owner", options = { { id = "bad id", alias = "Me" } } },
  } }

  it("lists filters and labels options by alias, value or range", function()
    local list = dfilters.list(META)
    assert.equal(2, #list)
    assert.same({ "filter1", "Stage", "Stage" }, { list[1].key, list[1].name, list[1].label })
    assert.same({ "filter2", "Owner", "Account Owner" }, { list[2].key, list[2].name, list[2].label })
    assert.same({ "Won", "Won", "1 to 9" },
      { list[1].options[1].label, list[1].options[2].label, list[1].options[3].label })
    assert.same({}, dfilters.list({ filters = cjson.null }))
    assert.same({}, dfilters.list(nil))
  end)

  it("resolves, and names every ambiguity or bad option id", function()
    assert.same({ filter1 = "0ICFk00000I0103OAB" }, dfilters.resolve(META, { stage = "1 TO 9" }, "D"))
    local r, err = dfilters.resolve(META, { Stage = "won" }, "D")
    assert.is_nil(r)
    assert.equal("invalid", err.kind)
    assert.equal('dashboard filter "Stage": "won" names 2 options ("0ICFk00000I0101OAB", "0ICFk00000I0102OAB");'
      .. " give the option id", err.message)
    assert.same({ filter1 = "0ICFk00000I0102OAB" }, dfilters.resolve(META, { Stage = "0ICFk00000I0102OAB" }, "D"))
    r, err = dfilters.resolve(META, { ["Account Owner"] = "me" }, "D")
    assert.is_nil(r)
    assert.equal("decode", err.kind)
    r, err = dfilters.resolve(META, { filter3 = "x" }, "D")
    assert.is_nil(r)
    assert.truthy(err.message:find('its filters: "Stage", "Account Owner"', 1, true))
    assert.has_error(function() dfilters.resolve(META, { [1] = "x" }, "D") end)
  end)

  it("keeps a Warning on a component with data as a warning, and NODATA as no report and no error", function()
    local d = assert(model.dashboard({ dashboardMetadata = { id = "01ZFk00000G0001MAB" }, componentData = {
      { componentId = "01aFk00000H0001IAB", reportResult = load_fixture("dashboard_results_docs.json")
          .componentData[1].reportResult,
        status = { dataStatus = "DATA", errorCode = 305, errorMessage = "Some rows are hidden.",
          errorSeverity = "Warning" } },
      { componentId = "01aFk00000H0002IAB", reportResult = cjson.null, status = { dataStatus = "NODATA" } },
    } }))
    local a, b = d.components[1], d.components[2]
    assert.same({ code = "305", message = "Some rows are hidden.", severity = "Warning" }, a.warning)
    assert.is_nil(a.error)
    assert.equal("SUMMARY", a.report.format)
    assert.is_nil(b.report)
    assert.is_nil(b.error)
    assert.is_nil(b:table())
    assert.same({}, d:failed())
  end)
end)
