-- spec/fakeorg_spec.lua: the fake org answers like the Analytics API (checked with curl).
local fakeorg = require "fakeorg"

local q = fakeorg.shell_quote

describe("fake org", function()
  local org

  setup(function()
    org = fakeorg.start()
    org:control("config", { async_delay = 0.2 })
  end)

  teardown(function()
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
  end)

  -- curl with auth; returns body, http status
  local function get(path, extra, token)
    local cmd = ("curl -s %s -H %s -w '\\n%%{http_code}' %s"):format(extra or "",
      q("Authorization: Bearer " .. (token or org.token)), q(org:api() .. path))
    local out = fakeorg.run(cmd)
    local body, status = out:match("^(.*)\n(%d+)$")
    return body, tonumber(status)
  end

  local function post(path, body, method)
    return get(path, ("-X %s -H 'Content-Type: application/json' --data-binary %s"):format(
      method or "POST", q(body and fakeorg.encode(body) or "")))
  end

  local function json(body) return fakeorg.decode(body) end

  it("rejects requests without a valid token with the Salesforce 401 body", function()
    local body, status = get("/reports", nil, "wrong")
    assert.equal(401, status)
    local err = json(body)
    assert.equal("INVALID_SESSION_ID", err[1].errorCode)
    assert.equal("Session expired or invalid", err[1].message)
  end)

  it("caps tabular detail rows at 2,000 and flags the truncation", function()
    local body, status = get("/reports/" .. fakeorg.reports.tabular_5k.id .. "?includeDetails=true")
    assert.equal(200, status)
    local r = json(body)
    assert.equal(2000, #r.factMap["T!T"].rows)
    assert.is_false(r.allData)
    assert.is_true(r.hasExceededTabularRowLimit)
    assert.equal(5000, r.factMap["T!T"].aggregates[2].value)
    assert.equal(#r.reportMetadata.detailColumns, #r.factMap["T!T"].rows[1].dataCells)
  end)

  it("omits rows when includeDetails=false", function()
    local r = json((get("/reports/" .. fakeorg.reports.summary_1.id .. "?includeDetails=false")))
    assert.is_nil(r.factMap["T!T"].rows)
    assert.is_nil(r.factMap["0!T"].rows)
    assert.equal("SUMMARY", r.reportMetadata.reportFormat)
  end)

  it("gzips when asked and keeps connections alive", function()
    local url = q(org:api() .. "/reports/" .. fakeorg.reports.tabular_wide.id .. "?includeDetails=true")
    local auth = q("Authorization: Bearer " .. org.token)
    local gz = tonumber((fakeorg.run(("curl -s --compressed -o /dev/null -H %s -w '%%{size_download}' %s")
      :format(auth, url))))
    local plain = tonumber((fakeorg.run(("curl -s -o /dev/null -H %s -w '%%{size_download}' %s"):format(auth, url))))
    assert.is_true(gz * 3 < plain)
    assert.equal(1, org:stats().gzip)
    org:reset()
    local reports_url = q(org:api() .. "/reports")
    fakeorg.run(("curl -s -o /dev/null -o /dev/null -H %s %s %s"):format(auth, reports_url, reports_url))
    local stats = org:stats()
    assert.equal(2, stats.requests)
    assert.equal(1, stats.connections)
  end)

  it("applies run-time filters", function()
    local body, status = post("/reports/" .. fakeorg.reports.tabular_5k.id .. "?includeDetails=true", {
      reportMetadata = {
        detailColumns = { "STAGE_NAME", "AMOUNT" },
        reportFilters = {
          { column = "STAGE_NAME", operator = "equals", value = "Closed Won,Closed Lost" },
          { column = "AMOUNT", operator = "greaterOrEqual", value = "100000" },
        },
      },
    })
    assert.equal(200, status)
    local rows = json(body).factMap["T!T"].rows
    assert.is_true(#rows > 10)
    for _, row in ipairs(rows) do
      local stage, amount = row.dataCells[1].value, row.dataCells[2].value
      assert.is_true(stage == "Closed Won" or stage == "Closed Lost")
      assert.is_true(amount.amount >= 100000)
    end
  end)

  it("runs async instances New -> Success and deletes them", function()
    local base = "/reports/" .. fakeorg.reports.tabular_small.id .. "/instances"
    org:control("config", { async_delay = 1.5 }) -- the first poll (a second curl) comes well inside it
    local body, status = post(base .. "?includeDetails=true")
    assert.equal(200, status)
    local inst = json(body)
    assert.equal("New", inst.status)
    assert.equal("0LG", inst.id:sub(1, 3))
    local result = json((get(base .. "/" .. inst.id)))
    assert.is_nil(result.factMap)
    fakeorg.run("sleep 1.6")
    result = json((get(base .. "/" .. inst.id)))
    assert.equal("ReportInstance", result.attributes.type)
    assert.equal("Success", result.attributes.status)
    assert.equal(40, #result.factMap["T!T"].rows)
    assert.equal(2, org:stats().instance_polls[inst.id])
    local _, deleted = post(base .. "/" .. inst.id, nil, "DELETE")
    assert.equal(204, deleted)
    local _, again = post(base .. "/" .. inst.id, nil, "DELETE")
    assert.equal(404, again)
  end)

  it("builds a full Cartesian matrix fact map", function()
    local r = json((get("/reports/" .. fakeorg.reports.matrix.id .. "?includeDetails=true")))
    local function count_nodes(nodes)
      local n = 0
      for _, node in ipairs(nodes) do n = n + 1 + count_nodes(node.groupings) end
      return n
    end
    local down, across = count_nodes(r.groupingsDown.groupings), count_nodes(r.groupingsAcross.groupings)
    local keys = 0
    for _ in pairs(r.factMap) do keys = keys + 1 end
    assert.equal((down + 1) * (across + 1), keys)
    assert.same({}, r.factMap["T!T"].rows)
    assert.equal(600, r.factMap["T!T"].aggregates[2].value)
  end)

  it("describes the report type with computed date durations", function()
    local d = json((get("/reports/" .. fakeorg.reports.tabular_small.id .. "/describe")))
    local found
    for _, cat in ipairs(d.reportTypeMetadata.categories) do
      if cat.columns.DESCRIPTION then found = cat.columns.DESCRIPTION end
    end
    assert.is_false(found.filterable)
    local values = {}
    for _, g in ipairs(d.reportTypeMetadata.standardDateFilterDurationGroups) do
      for _, dur in ipairs(g.standardDateFilterDurations) do values[dur.value] = dur end
    end
    assert.equal(os.date("!%Y-%m-01"), values.THIS_MONTH.startDate)
    assert.truthy(values.CUSTOM and values.LAST_FISCAL_YEAR and values["LAST_N_DAYS:30"])
    assert.truthy(d.reportTypeMetadata.dataTypeFilterOperatorMap.currency)
  end)

  it("answers unknown reports with NOT_FOUND", function()
    local body, status = get("/reports/00OFk00000Z0001MAB")
    assert.equal(404, status)
    assert.same({ { errorCode = "NOT_FOUND", message = "The requested resource does not exist" } }, json(body))
  end)

  it("keeps a gated dashboard refresh running until the gate's PUTs have come", function()
    local dash = "/dashboards/01ZFk00000G0001MAB"
    org:control("config", { dashboard_refresh_delay = 0, dashboard_refresh_gate = 2 })
    local function running() return json((get(dash .. "/status"))).componentStatus[1].refreshStatus end
    local _, status = post(dash, nil, "PUT")
    assert.equal(200, status)
    -- no delay at all, yet the refresh runs: only one PUT has come
    assert.equal("RUNNING", running())
    assert.equal("RUNNING", running())
    local body
    body, status = post(dash, nil, "PUT")
    assert.equal(400, status)
    assert.truthy(body:find("already in progress", 1, true))
    -- the second PUT opened the gate, and the delay after it is 0
    assert.equal("IDLE", running())
    _, status = post(dash, nil, "PUT")
    assert.equal(200, status)
    assert.equal("IDLE", running())
  end)

  it("accepts exactly one of two refresh PUTs that come at once (two workers)", function()
    local url = org:api() .. "/dashboards/01ZFk00000G0001MAB"
    local auth = q("Authorization: Bearer " .. org.token)
    for round = 1, 30 do
      org:reset()
      local out = fakeorg.run(("curl -s --parallel --parallel-immediate -X PUT -H %s -o /dev/null -o /dev/null"
        .. " -w '%%{http_code} ' %s %s 2>/dev/null"):format(auth, q(url), q(url)))
      local codes = {}
      for code in out:gmatch("%d+") do codes[#codes + 1] = code end
      table.sort(codes)
      assert.same({ "200", "400" }, codes, "round " .. round)
    end
  end)

  it("holds sync runs at the gate until the gate's runs have come", function()
    org:control("config", { sync_delay = 0, sync_gate = 3 })
    local url = org:api() .. "/reports/" .. fakeorg.reports.tabular_small.id
    local auth = q("Authorization: Bearer " .. org.token)
    -- started one after another, 0.3 s apart: without the gate none would overlap
    fakeorg.run(("for i in 1 2 3; do curl -s -o /dev/null -H %s %s & sleep 0.3; done; wait"):format(auth, q(url)))
    local stats = org:stats()
    assert.equal(3, stats.sync_runs)
    assert.equal(3, stats.max_concurrent)
  end)

  it("injects faults", function()
    org:control("fault", { kind = "html502", count = 1 })
    local out = fakeorg.run(("curl -s -i -H %s %s")
      :format(q("Authorization: Bearer " .. org.token), q(org:api() .. "/reports")))
    assert.truthy(out:match("^HTTP/1.1 502"))
    assert.truthy(out:lower():match("content%-type: text/html"))
    local _, status = get("/reports")
    assert.equal(200, status)
  end)
end)
