-- The client against the fake org over real HTTP: every resource, every error kind,
-- gzip and connection reuse.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local ids = require "sfreports.ids"

describe("client against the fake org", function()
  local org, client
  local R = fakeorg.reports

  setup(function()
    org = fakeorg.start()
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
    if client then client:close() end
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)

  it("runs a report synchronously with details by default", function()
    local report = assert(client:run_sync(R.tabular_small.id))
    assert.equal("TABULAR", report.format)
    assert.is_true(report.all_data)
    local n = 0
    for _ in report:rows() do n = n + 1 end
    assert.equal(40, n)
  end)

  it("returns an answer undecoded with request_raw: the server's text, gunzipped", function()
    local path = client:path("reports/%s/describe", R.tabular_small.id)
    local text, meta = assert(client:request_raw("GET", path))
    assert.equal("string", type(text))
    assert.equal(200, meta.status)
    assert.equal("gzip", meta.headers["content-encoding"])
    assert.same(assert(client:describe(R.tabular_small.id)), assert(fakeorg.decode(text)))
    assert.is_table(client.limit_info) -- Sforce-Limit-Info is read from raw answers too
    local again = assert(client:describe(R.tabular_small.id, { raw = true }))
    assert.equal("string", type(again))
    assert.same(fakeorg.decode(text), fakeorg.decode(again))
    local bad, err = client:describe("00OFk00000A0001MAX", { raw = true })
    assert.is_nil(bad)
    assert.equal("invalid", err.kind)
    assert.matches("checksum", err.message)
  end)

  it("retries a raw GET like any other", function()
    org:control("fault", { kind = "html502", count = 1, path = "/describe$" })
    local text = assert(client:request_raw("GET", client:path("reports/%s/describe", R.tabular_small.id)))
    assert.matches('"reportMetadata"', text)
    assert.equal(2, org:stats().requests)
  end)

  it("runs without details when asked", function()
    local report = assert(client:run_sync(R.summary_1.id, { details = false }))
    assert.is_false(report.has_details)
    local n = 0
    for _ in report:rows() do n = n + 1 end
    assert.equal(0, n)
    assert.is_truthy(report.raw.factMap["T!T"].aggregates)
  end)

  it("flags a truncated report instead of presenting it as complete", function()
    local report = assert(client:run_sync(R.tabular_5k.id))
    assert.is_false(report.all_data)
    local n = 0
    for _ in report:rows() do n = n + 1 end
    assert.equal(2000, n)
  end)

  it("runs a report asynchronously to Success and fetches the instance", function()
    org:control("config", { async_delay = 0.3 })
    local inst = assert(client:run_async(R.summary_1.id))
    assert.is_true(ids.check(inst.id))
    assert.equal("0LG", inst.id:sub(1, 3))
    assert.equal("New", inst.status)
    local report = assert(inst:wait({ timeout = 10 }))
    assert.equal("SUMMARY", report.format)
    assert.equal("Success", inst.status)
    local again = assert(client:fetch_instance(R.summary_1.id, inst.id))
    local a, b = 0, 0
    for _ in report:rows() do a = a + 1 end
    for _ in again:rows() do b = b + 1 end
    assert.equal(120, a)
    assert.equal(a, b)
  end)

  it("says an instance is not ready instead of returning an empty report", function()
    org:control("config", { async_delay = 30 })
    local inst = assert(client:run_async(R.tabular_small.id))
    local report, err = client:fetch_instance(R.tabular_small.id, inst.id)
    assert.is_nil(report)
    assert.equal("api", err.kind)
    assert.equal("INSTANCE_NOT_READY", err.code)
    assert.is_true(err.retryable)
  end)

  it("lists and deletes instances", function()
    org:control("config", { async_delay = 0 })
    local a = assert(client:run_async(R.tabular_small.id))
    local b = assert(client:run_async(R.tabular_small.id))
    assert(a:wait({ timeout = 10 }))
    assert(b:wait({ timeout = 10 }))
    local list = assert(client:instances(R.tabular_small.id))
    local seen = {}
    for _, i in ipairs(list) do seen[i.id] = i.status end
    assert.equal("Success", seen[a.id])
    assert.equal("Success", seen[b.id])
    assert.is_true(client:delete_instance(R.tabular_small.id, a.id))
    local after = assert(client:instances(R.tabular_small.id))
    for _, i in ipairs(after) do assert.not_equal(a.id, i.id) end
    local _, err = client:delete_instance(R.tabular_small.id, a.id)
    assert.equal("api", err.kind)
    assert.equal(404, err.status)
  end)

  it("describes, lists reports and report types", function()
    local d = assert(client:describe(R.matrix.id))
    assert.equal("MATRIX", d.reportMetadata.reportFormat)
    assert.is_table(d.reportTypeMetadata.dataTypeFilterOperatorMap)
    local list = assert(client:list_reports())
    local found = false
    for _, r in ipairs(list) do if r.id == R.tabular_wide.id then found = true end end
    assert.is_true(found)
    local types = assert(client:report_types())
    assert.is_string(types[1].label)
    assert.is_table(types[1].reportTypes)
  end)

  it("runs metadata without saving a report (query)", function()
    local d = assert(client:describe(R.tabular_small.id))
    local md = d.reportMetadata
    local report = assert(client:query({ reportType = md.reportType, reportFormat = "TABULAR",
      detailColumns = { "OPPORTUNITY_NAME", "AMOUNT" } }))
    assert.equal("TABULAR", report.format)
    local cols = report:columns()
    assert.equal(2, #cols)
    assert.equal("AMOUNT", cols[2].name)
  end)

  it("exposes run_sync, run_async and fetch_instance in the C core, returning decoded JSON", function()
    local core = require "sfreports.core"
    org:control("config", { async_delay = 0.2 })
    local s = core.session({ base_url = org.url, token = org.token, api_version = "67.0" })
    local v, meta = assert(s:run_sync(R.summary_1.id))
    assert.equal(200, meta.status)
    assert.equal("SUMMARY", v.reportMetadata.reportFormat)
    assert.is_table(v.factMap["0!T"].rows)
    local nodetail = assert(s:run_sync(R.summary_1.id, nil, false))
    assert.is_nil(nodetail.factMap["0!T"].rows)
    local posted = assert(s:run_sync(R.tabular_5k.id,
      '{"reportMetadata":{"reportFilters":[{"column":"TYPE","operator":"equals","value":"New Customer"}]}}'))
    for _, row in ipairs(posted.factMap["T!T"].rows) do
      assert.equal("New Customer", row.dataCells[10].value)
    end
    local inst = assert(s:run_async(R.tabular_small.id))
    assert.equal("New", inst.status)
    local result
    for _ = 1, 50 do
      result = assert(s:fetch_instance(R.tabular_small.id, inst.id))
      if result.factMap then break end
      core.sleep(0.05)
    end
    assert.equal("Success", result.attributes.status)
    assert.equal(40, #result.factMap["T!T"].rows)
    s:close()
  end)

  it("reuses one connection for sequential requests and uses gzip", function()
    for _ = 1, 5 do assert(client:describe(R.tabular_small.id)) end
    assert(client:run_sync(R.tabular_wide.id))
    local stats = org:stats()
    assert.equal(6, stats.requests)
    assert.equal(1, stats.connections)
    assert.equal(6, stats.gzip)
    assert.equal(1, client.transport:stats().connects)
  end)

  it("exposes the Sforce-Limit-Info usage", function()
    assert(client:describe(R.tabular_small.id))
    assert.is_table(client.limit_info["api-usage"])
    assert.is_number(client.limit_info["api-usage"].used)
  end)

  describe("errors", function()
    it("auth: a bad token", function()
      local c = assert(sfreports.new({ instance_url = org.url, access_token = "00Dnope!wrong-token" }))
      local r, err = c:run_sync(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.equal("INVALID_SESSION_ID", err.code)
      assert.not_matches("wrong%-token", tostring(err))
      c:close()
    end)

    it("request_raw: an error is decoded and classified like any other", function()
      local r, err = client:request_raw("GET", client:path("reports/%s/describe", ids.to18("00OFk00000Z9999")))
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(404, err.status)
      assert.equal("NOT_FOUND", err.code)
    end)

    it("api: an unknown report, named in the message", function()
      local id = ids.to18("00OFk00000Z9999")
      local r, err = client:run_sync(id)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(404, err.status)
      assert.equal("NOT_FOUND", err.code)
      assert.matches("report " .. id .. " was not found", err.message, 1, true)
      local _, derr = client:describe(id)
      assert.matches("/analytics/reports/" .. id .. "/describe was not found", derr.message, 1, true)
    end)

    it("invalid: a malformed id, before any request", function()
      local r, err = client:run_sync("00OFk00000A0001XXX")
      assert.is_nil(r)
      assert.equal("invalid", err.kind)
      assert.equal(0, org:stats().requests)
    end)

    it("network: nothing listening", function()
      local c = assert(sfreports.new({ instance_url = "http://127.0.0.1:1", access_token = org.token }))
      local r, err = c:describe(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal("network", err.kind)
    end)

    it("timeout: a sync run slower than the client's timeout", function()
      org:control("config", { sync_delay = 3 })
      local c = assert(sfreports.new({ instance_url = org.url, access_token = org.token, timeout = 0.5 }))
      local r, err = c:run_sync(R.slow.id)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      c:close()
    end)

    it("http: an HTML 502 page (with retries off)", function()
      org:control("fault", { kind = "html502", count = 1 })
      local c = assert(sfreports.new({ instance_url = org.url, access_token = org.token, retries = 0 }))
      local r, err = c:describe(R.tabular_small.id)
      c:close()
      assert.is_nil(r)
      assert.equal("http", err.kind)
      assert.equal(502, err.status)
      assert.is_true(err.retryable)
      assert.not_matches("<", err.message)
    end)

    it("decode: invalid JSON in a 200", function()
      org:control("fault", { kind = "invalid_json", count = 1 })
      local r, err = client:describe(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
    end)

    it("limit: REQUEST_LIMIT_EXCEEDED", function()
      org:control("fault", { kind = "limit", count = 1 })
      local r, err = client:describe(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal("limit", err.kind)
      assert.equal("REQUEST_LIMIT_EXCEEDED", err.code)
    end)
  end)
end)
