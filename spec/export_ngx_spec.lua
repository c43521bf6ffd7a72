-- export_ngx_spec: client:export inside a real nginx (cosockets): Salesforce's formatted
-- export streamed through the example handler to the caller with its Content-Type and
-- Content-Disposition, byte for byte what the org sent; JSON errors answered as JSON; a
-- 48 MB export handed to the sink chunk by chunk within a few MB of Lua heap and worker
-- memory; a transfer cut after its first bytes is not retried.
local fakeorg = require "fakeorg"
local nginx = require "nginx"

local R = fakeorg.reports
local q = fakeorg.shell_quote
local decode = fakeorg.decode

local XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

-- The locations of the spec's own nginx (nginx.start_sfreports runs sfreports in it).
local TEST_SERVER = [[
        location = /export { content_by_lua_block { require("ngx_export_probe").export() } }
        location / { return 404; }
]]

describe("client:export inside nginx", function()
  local org, example, test

  local function stop_all()
    if example then example:stop() end
    if test then test:stop() end
    if org then nginx.stop_orgs({ org }) end
    example, test, org = nil, nil, nil
  end

  setup(nginx.guarded(function()
    org = fakeorg.start()
    example = nginx.start_example(org)
    test = nginx.start_sfreports({ org = org, server = TEST_SERVER })
  end, stop_all))
  teardown(stop_all)

  before_each(function() org:reset() end)

  local function direct(id)
    local path = org.dir .. "/direct.xlsx"
    fakeorg.run(org:curl_base() .. " -H " .. q("Authorization: Bearer " .. org.token) .. " -H " .. q("Accept: " .. XLSX)
      .. " -o " .. q(path) .. " " .. q(org:api("67.0") .. "/reports/" .. id .. "?includeDetails=true"))
    local s = fakeorg.read_file(path)
    os.remove(path)
    return s
  end

  local function probe(query)
    local status, body = test:request("/export?" .. query)
    assert.are.equal(200, status, body .. test:error_log())
    return decode(body)
  end

  it("streams the example handler's download with Salesforce's type and file name", function()
    local status, body, headers = example:request("/reports/" .. R.tabular_wide.id .. ".xlsx")
    assert.are.equal(200, status, example:error_log())
    assert.are.equal(XLSX, headers["content-type"])
    assert.are.equal('attachment; filename="Wide Opportunity Export.xlsx"', headers["content-disposition"])
    assert.are.equal("chunked", headers["transfer-encoding"])
    local expected = direct(R.tabular_wide.id)
    assert.is_true(#body > 2 * 1024 * 1024)
    assert.is_true(body == expected, ("%d vs %d bytes"):format(#body, #expected))
  end)

  it("answers an error before the first byte as JSON with its status", function()
    local status, body, headers = example:request("/reports/00OFk00000Z0001MAB.xlsx")
    assert.are.equal(404, status)
    assert.are.equal("application/json", headers["content-type"])
    local e = decode(body)
    assert.are.same({ "api", "NOT_FOUND" }, { e.error, e.code })
    org:control("fault", { kind = "body", body = "[]" })
    status, body = example:request("/reports/" .. R.tabular_small.id .. ".xlsx")
    assert.are.equal(502, status)
    assert.truthy(decode(body).message:find("where " .. XLSX .. " was expected", 1, true))
  end)

  it("hands a 48 MB export to the sink chunk by chunk in the memory of a few chunks", function()
    org:control("fault", { kind = "huge", bytes = 48 * 1024 * 1024 })
    local a = probe("id=" .. R.tabular_small.id)
    assert.is_true(a.ok, a.err and a.err.message)
    assert.are.equal("ngx", a.engine)
    assert.are.equal("Huge.xlsx", a.filename)
    assert.is_true(a.bytes > 48 * 1024 * 1024)
    assert.is_true(a.chunks > 500, "chunks: " .. a.chunks)
    assert.is_true(a.biggest <= 65536, "largest chunk: " .. a.biggest)
    assert.is_true(a.heap_growth_kb < 8 * 1024, "Lua heap grew by " .. a.heap_growth_kb .. " kB")
    assert.is_true(a.hwm_kb - a.rss_before_kb < 16 * 1024,
      ("worker peak %d kB from %d kB"):format(a.hwm_kb, a.rss_before_kb))
  end)

  it("does not retry a transfer cut after its first bytes, and stops a stalled one", function()
    org:control("fault", { kind = "reset", bytes = 200000 })
    local a = probe("id=" .. R.tabular_small.id)
    assert.is_false(a.ok)
    assert.are.same({ "network", false }, { a.err.kind, a.err.retryable })
    assert.is_true(a.err.streamed > 0)
    assert.are.equal(1, org:stats().requests)
    org:reset()
    org:control("fault", { kind = "stall", bytes = 100000, seconds = 5 })
    a = probe("stall=0.5&id=" .. R.tabular_small.id)
    assert.are.same({ "timeout", false }, { a.err.kind, a.err.retryable })
    assert.are.equal(1, org:stats().requests)
  end)
end)
