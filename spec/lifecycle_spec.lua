-- Reports as objects: create, clone, save (PATCH), delete; report fields, one report
-- type, filter operators. Real HTTP against the fake org; the exact JSON bodies sent are
-- read back from the org's record of requests.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local F = require "sfreports.filters"
local cjson = require "cjson"

local function last_request(org, method)
  local list = org:bodies()
  for i = #list, 1, -1 do
    if list[i].method == method then return list[i] end
  end
  error("no " .. method .. " request")
end

local function count_requests(org)
  return #org:bodies()
end

describe("report lifecycle against the fake org", function()
  local org, client
  local R = fakeorg.reports
  local V

  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
    V = "/services/data/v" .. client.api_version .. "/analytics"
  end)

  teardown(function()
    client:close()
    org:stop()
  end)

  before_each(function() org:reset() end)

  it("create_report posts the metadata and returns the new report's describe; the report runs", function()
    local md = { name = "Pipeline by Type", reportFormat = "SUMMARY", reportType = { type = "Opportunity" },
      detailColumns = { "OPPORTUNITY_NAME", "AMOUNT" }, aggregates = { "s!AMOUNT", "RowCount" },
      groupingsDown = { { name = "TYPE", sortOrder = "Asc", dateGranularity = "None" } }, reportFilters = {} }
    local d = assert(client:create_report(md))
    local id = d.reportMetadata.id
    assert.truthy(require("sfreports.ids").check(id))
    assert.equal("Pipeline by Type", d.reportMetadata.name)
    assert.same({ "OPPORTUNITY_NAME", "AMOUNT" }, d.reportMetadata.detailColumns)
    local req = last_request(org, "POST")
    assert.equal(V .. "/reports", req.uri)
    assert.equal('{"reportMetadata":{"aggregates":["s!AMOUNT","RowCount"],"detailColumns":["OPPORTUNITY_NAME",'
      .. '"AMOUNT"],"groupingsDown":[{"dateGranularity":"None","name":"TYPE","sortOrder":"Asc"}],'
      .. '"name":"Pipeline by Type","reportFilters":[],"reportFormat":"SUMMARY","reportType":{"type":"Opportunity"}}}',
      req.body)
    local report = assert(client:run_sync(id))
    assert.equal("SUMMARY", report.format)
    assert.equal("Sum of Amount", report:total("s!AMOUNT").column.label)
    -- {reportMetadata = ...} is accepted too
    assert.truthy(client:create_report({ reportMetadata = { name = "X", reportType = { type = "Opportunity" } } }))
  end)

  it("create_report: what Salesforce refuses is its api error with code and fields", function()
    local d, err = client:create_report({ name = "Bad", reportType = { type = "Opportunity" },
      detailColumns = { "NOPE" } })
    assert.is_nil(d)
    assert.equal("api", err.kind)
    assert.equal(400, err.status)
    assert.equal("BAD_REQUEST", err.code)
    assert.matches("NOPE", err.message)
    d, err = client:create_report({ name = " ", reportType = { type = "Opportunity" } })
    assert.is_nil(d)
    assert.same({ "name" }, err.fields)
    assert.has_error(function() client:create_report("x") end,
      "sfreports: create_report expects a reportMetadata table, got string")
    assert.has_error(function() client:create_report({}) end)
  end)

  it("clone_report posts ?cloneId= with the name and folder; the clone has the source's metadata", function()
    local folder = require("sfreports.ids").to18("00lFk0000000001")
    local d = assert(client:clone_report(R.summary_3.id, { name = "Copy of pipeline", folder = folder }))
    local req = last_request(org, "POST")
    assert.equal(V .. "/reports?cloneId=" .. R.summary_3.id, req.uri)
    assert.equal('{"reportMetadata":{"folderId":"' .. folder .. '","name":"Copy of pipeline"}}', req.body)
    local id = d.reportMetadata.id
    assert.not_equal(R.summary_3.id, id)
    assert.equal("Copy of pipeline", d.reportMetadata.name)
    assert.equal(folder, d.reportMetadata.folderId)
    assert.same({ "s!AMOUNT", "a!PROBABILITY", "RowCount" }, d.reportMetadata.aggregates)
    local original = assert(client:run_sync(R.summary_3.id))
    local copy = assert(client:run_sync(id))
    assert.equal(original:total("s!AMOUNT").value, copy:total("s!AMOUNT").value)
  end)

  it("clone_report: name required (raises), ids checked before any request, a missing source is a 404", function()
    assert.has_error(function() client:clone_report(R.summary_1.id, {}) end,
      "sfreports: clone_report needs option 'name' (the new report's name)")
    assert.has_error(function() client:clone_report(R.summary_1.id, { name = "x", nme = "y" }) end,
      "sfreports: unknown option 'nme' for clone_report")
    local n = count_requests(org)
    local d, err = client:clone_report("00OFk00000A0001MAX", { name = "x" })
    assert.is_nil(d)
    assert.equal("invalid", err.kind)
    d, err = client:clone_report(R.summary_1.id, { name = "x", folder = "nope" })
    assert.is_nil(d)
    assert.equal("invalid", err.kind)
    assert.equal(n, count_requests(org))
    d, err = client:clone_report("00OFk00000Z0001MAB", { name = "x" })
    assert.is_nil(d)
    assert.equal("api", err.kind)
    assert.equal(404, err.status)
  end)

  it("save_report PATCHes run options checked against describe, returns the saved describe, forgets the cache",
    function()
    local d = assert(client:clone_report(R.tabular_small.id, { name = "To change" }))
    local id = d.reportMetadata.id
    -- a run caches the describe
    assert(client:run_sync(id, { filters = { F.gt("AMOUNT", 0) } }))
    local saved = assert(client:save_report(id, {
      filters = { F.eq("STAGE_NAME", "Closed Won") }, columns = { "OPPORTUNITY_NAME", "Amount" },
      aggregates = { F.max("AMOUNT"), F.unique("ACCOUNT_NAME") }, sort = { "AMOUNT", "desc" },
      name = "Won, biggest first", description = "saved by the spec" }))
    local req = last_request(org, "PATCH")
    assert.equal(V .. "/reports/" .. id, req.uri)
    assert.equal('{"reportMetadata":{"aggregates":["s!AMOUNT","RowCount","x!AMOUNT","u!ACCOUNT_NAME"],'
      .. '"description":"saved by the spec","detailColumns":["OPPORTUNITY_NAME","AMOUNT"],'
      .. '"historicalSnapshotDates":[],"name":"Won, biggest first","reportBooleanFilter":null,'
      .. '"reportFilters":[{"column":"STAGE_NAME","operator":"equals","value":"Closed Won"}],'
      .. '"sortBy":[{"sortColumn":"AMOUNT","sortOrder":"desc"}],'
      .. '"standardDateFilter":{"column":"CLOSE_DATE","durationValue":"CUSTOM","endDate":null,"startDate":null}}}',
      req.body)
    assert.equal("Won, biggest first", saved.reportMetadata.name)
    assert.same({ "s!AMOUNT", "RowCount", "x!AMOUNT", "u!ACCOUNT_NAME" }, saved.reportMetadata.aggregates)
    -- the next run describes the report again (the cache was dropped) and runs the saved report
    local describes = org:stats().by_path[V .. "/reports/" .. id .. "/describe"]
    local report = assert(client:run_sync(id, { filters = { F.gt("AMOUNT", 0) } }))
    assert.equal(describes + 1, org:stats().by_path[V .. "/reports/" .. id .. "/describe"])
    for row in report:rows() do
      assert.equal(2, #row.cells)
    end
    local prev
    for row in report:rows() do
      local v = row.cells[2].value
      if prev and v ~= sfreports.null then assert.is_true(v <= prev) end
      if v ~= sfreports.null then prev = v end
    end
    assert.equal("Max of Amount", report:total("x!AMOUNT").column.label)
  end)

  it("save_report with raw metadata, and Salesforce deleting the report's async instances", function()
    org:control("config", { async_delay = 30 })
    local d = assert(client:clone_report(R.summary_1.id, { name = "Raw" }))
    local id = d.reportMetadata.id
    assert(client:run_async(id))
    assert.equal(1, #assert(client:instances(id)))
    local saved = assert(client:save_report(id, { metadata = { aggregates = { "RowCount" } } }))
    assert.same({ "RowCount" }, saved.reportMetadata.aggregates)
    assert.equal('{"reportMetadata":{"aggregates":["RowCount"]}}', last_request(org, "PATCH").body)
    assert.equal(0, #assert(client:instances(id)))
  end)

  it("save_report: misuse raises, bad options are invalid before any request, refusals are api errors", function()
    assert.has_error(function() client:save_report(R.summary_1.id, { fitlers = {} }) end,
      "sfreports: unknown option 'fitlers' for save_report")
    assert.has_error(function() client:save_report(R.summary_1.id, {}) end)
    assert.has_error(function() client:save_report(R.summary_1.id, { timeout = 3 }) end,
      "sfreports: unknown option 'timeout' for save_report")
    local n = count_requests(org)
    local d, err = client:save_report("bad", { name = "x" })
    assert.is_nil(d)
    assert.equal("invalid", err.kind)
    assert.equal(n, count_requests(org))
    d, err = client:save_report(R.summary_1.id, { aggregates = { F.sum("STAGE_NAME") } })
    assert.is_nil(d)
    assert.equal("invalid", err.kind)
    assert.equal("aggregates", err.option)
    -- only the describe went out, no PATCH
    for _, req in ipairs(org:bodies()) do assert.not_equal("PATCH", req.method) end
    -- what the org refuses: its api error with code and the offending field
    d, err = client:save_report(R.summary_1.id, { metadata = { detailColumns = { "NOT_A_COLUMN" } } })
    assert.is_nil(d)
    assert.equal("api", err.kind)
    assert.equal(400, err.status)
    assert.equal("BAD_REQUEST", err.code)
    assert.matches("NOT_A_COLUMN", err.message)
    assert.same({ "reportMetadata" }, err.fields)
    d, err = client:save_report(R.summary_1.id, { name = "" })
    assert.is_nil(d)
    assert.same({ "name" }, err.fields)
    d, err = client:save_report(R.joined.id, { name = "j" })
    assert.is_nil(d)
    assert.equal("api", err.kind)
  end)

  it("delete_report deletes; the report is gone (404 api error), a second delete is a 404 too", function()
    local d = assert(client:clone_report(R.tabular_small.id, { name = "Doomed" }))
    local id = d.reportMetadata.id
    assert(client:describe(id, { cached = true }))
    assert.is_true(client:delete_report(id))
    assert.equal("DELETE", last_request(org, "DELETE").method)
    assert.equal(V .. "/reports/" .. id, last_request(org, "DELETE").uri)
    -- the cached describe was dropped: this asks the org, which says 404
    local r, err = client:describe(id, { cached = true })
    assert.is_nil(r)
    assert.equal(404, err.status)
    local ok
    ok, err = client:delete_report(id)
    assert.is_nil(ok)
    assert.equal("api", err.kind)
    assert.equal(404, err.status)
    assert.equal("NOT_FOUND", err.code)
    assert.equal(id, err.report_id)
    -- a catalog report can be deleted too, and comes back after a reset
    assert.is_true(client:delete_report(R.slow.id))
    assert.is_nil((client:run_sync(R.slow.id)))
    org:reset()
    assert.truthy(client:describe(R.slow.id))
    ok, err = client:delete_report("00OFk00000A0001")
    assert.is_true(ok, err and tostring(err))
    ok, err = client:delete_report(42)
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
  end)

  it("report_fields lists the fields; intersect_with sends intersectWith", function()
    local f = assert(client:report_fields(R.tabular_small.id))
    assert.equal(V .. "/reports/" .. R.tabular_small.id .. "/fields", last_request(org, "POST").uri)
    assert.equal(cjson.null, last_request(org, "POST").body)
    assert.is_true(#f.displayGroups >= 2)
    local seen = false
    for _, g in ipairs(f.displayGroups) do
      if g.columns.AMOUNT then seen = g.columns.AMOUNT.label == "Amount" end
    end
    assert.is_true(seen)
    f = assert(client:report_fields(R.tabular_small.id, { intersect_with = { R.summary_1.id, R.matrix.id } }))
    assert.equal('{"intersectWith":["' .. R.summary_1.id .. '","' .. R.matrix.id .. '"]}',
      last_request(org, "POST").body)
    assert.is_true(#f.equivalentFields > 10)
    local n = count_requests(org)
    local none, err = client:report_fields(R.tabular_small.id, { intersect_with = { "x" } })
    assert.is_nil(none)
    assert.equal("invalid", err.kind)
    assert.equal(n, count_requests(org))
    none, err = client:report_fields(R.tabular_small.id, { intersect_with = { "00OFk00000Z0001MAB" } })
    assert.is_nil(none)
    assert.equal(404, err.status)
    assert.has_error(function() client:report_fields(R.tabular_small.id, { intersect = {} }) end)
  end)

  it("report_type describes one type; filter_operators lists operators per data type", function()
    local t = assert(client:report_type("Opportunity"))
    assert.is_table(t.reportTypeMetadata.categories)
    local none, err = client:report_type("No Such$Type")
    assert.is_nil(none)
    assert.equal(404, err.status)
    assert.equal(V .. "/reportTypes/No%20Such$Type", org:bodies()[#org:bodies()].uri)
    assert.has_error(function() client:report_type("") end)
    local ops = assert(client:filter_operators())
    local names = {}
    for _, op in ipairs(ops.multipicklist) do names[#names + 1] = op.name end
    assert.same({ "equals", "notEqual", "includes", "excludes" }, names)
    assert(client:filter_operators({ dashboards = true }))
    assert.equal(V .. "/filteroperators?forDashboards=true", org:bodies()[#org:bodies()].uri)
  end)
end)
