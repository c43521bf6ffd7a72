-- Filters end to end: run-time filters merged with saved ones, sent to the fake org, and
-- the rows that come back checked against the filter (real HTTP, the fake org's engine).
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local F = require "sfreports.filters"

local function rows_of(report)
  local out, cols = {}, {}
  for i, c in ipairs(report:columns()) do cols[c.name] = i end
  for row in report:rows() do
    local r = {}
    for name, i in pairs(cols) do r[name] = row.cells[i].value end
    out[#out + 1] = r
  end
  return out
end

local function amount(v) return type(v) == "table" and v.amount or v end

describe("filters against the fake org", function()
  local org, client
  local R = fakeorg.reports

  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)

  teardown(function()
    client:close()
    org:stop()
  end)

  it("applies new filters and returns only matching rows", function()
    local report = assert(client:run_sync(R.tabular_5k.id, {
      filters = F.all({ F.eq("Stage", { "Closed Won", "Negotiation/Review" }), F.ge("AMOUNT", 100000) }),
    }))
    assert.is_true(report.all_data)
    local rows = rows_of(report)
    assert.is_true(#rows > 10)
    for _, r in ipairs(rows) do
      assert.is_true(r.STAGE_NAME == "Closed Won" or r.STAGE_NAME == "Negotiation/Review", r.STAGE_NAME)
      assert.is_true(amount(r.AMOUNT) >= 100000)
    end
  end)

  it("composes OR and NOT logic", function()
    local report = assert(client:run_sync(R.tabular_5k.id, {
      filters = F.all({ F.any({ F.eq("TYPE", "New Customer"), F.lt("AMOUNT", 20000) }),
        F.not_(F.eq("STAGE_NAME", "Closed Lost")) }),
    }))
    local rows = rows_of(report)
    assert.is_true(#rows > 0)
    for _, r in ipairs(rows) do
      assert.is_true(r.TYPE == "New Customer" or amount(r.AMOUNT) < 20000)
      assert.not_equal("Closed Lost", r.STAGE_NAME)
    end
  end)

  it("merges with the saved filters and logic by default", function()
    local saved = rows_of(assert(client:run_sync(R.filtered.id)))
    for _, r in ipairs(saved) do
      assert.is_true(r.STAGE_NAME ~= "Closed Lost" or r.TYPE == "New Customer")
      assert.is_true(amount(r.AMOUNT) > 20000)
    end
    local merged = rows_of(assert(client:run_sync(R.filtered.id, { filters = F.eq("LEAD_SOURCE", "Web") })))
    assert.is_true(#merged > 0 and #merged < #saved)
    for _, r in ipairs(merged) do
      assert.equal("Web", r.LEAD_SOURCE)
      assert.is_true(r.STAGE_NAME ~= "Closed Lost" or r.TYPE == "New Customer")
      assert.is_true(amount(r.AMOUNT) > 20000)
    end
  end)

  it("replaces the saved filters when asked", function()
    local replaced = rows_of(assert(client:run_sync(R.filtered.id, {
      filters = F.lt("AMOUNT", 20000), replace_filters = true })))
    assert.is_true(#replaced > 0)
    for _, r in ipairs(replaced) do assert.is_true(amount(r.AMOUNT) < 20000) end
  end)

  it("sorts, limits top rows and chooses columns", function()
    local report = assert(client:run_sync(R.tabular_5k.id, {
      sort = { "AMOUNT", "desc" }, top = 5, columns = { "OPPORTUNITY_NAME", "AMOUNT" } }))
    local cols = report:columns()
    assert.equal(2, #cols)
    local rows = rows_of(report)
    assert.equal(5, #rows)
    for i = 2, #rows do assert.is_true(amount(rows[i - 1].AMOUNT) >= amount(rows[i].AMOUNT)) end
  end)

  it("applies a custom date range", function()
    local report = assert(client:run_sync(R.tabular_5k.id, {
      date_filter = { column = "CLOSE_DATE", from = "2025-01-01", to = "2025-03-31" } }))
    local rows = rows_of(report)
    assert.is_true(#rows > 0)
    for _, r in ipairs(rows) do
      assert.is_true(r.CLOSE_DATE >= "2025-01-01" and r.CLOSE_DATE <= "2025-03-31", r.CLOSE_DATE)
    end
  end)

  -- NEXT_STEP holds "Negotiate, then sign" (a comma) among other steps. The fake org splits
  -- a value on unquoted commas as Salesforce does, and echoes the filters it received.
  it("sends a single value holding a comma quoted, so the server keeps it whole", function()
    local report = assert(client:run_sync(R.tabular_5k.id, {
      filters = F.eq("NEXT_STEP", "Negotiate, then sign"), columns = { "OPPORTUNITY_NAME", "NEXT_STEP" } }))
    local received = report.metadata.reportFilters
    assert.equal('"Negotiate, then sign"', received[#received].value)
    assert.is_true(report.all_data)
    local rows = rows_of(report)
    assert.is_true(#rows > 10)
    for _, r in ipairs(rows) do assert.equal("Negotiate, then sign", r.NEXT_STEP) end
  end)

  it("sends a list as several values and F.raw() in the API's own comma form", function()
    local function steps(filter)
      local report = assert(client:run_sync(R.tabular_5k.id, { filters = filter, columns = { "NEXT_STEP" } }))
      local seen = {}
      for _, r in ipairs(rows_of(report)) do seen[r.NEXT_STEP] = (seen[r.NEXT_STEP] or 0) + 1 end
      local received = report.metadata.reportFilters
      return seen, received[#received].value
    end
    local seen, value = steps(F.eq("NEXT_STEP", { "Negotiate, then sign", "Call back" }))
    assert.equal('"Negotiate, then sign",Call back', value)
    assert.is_true(seen["Negotiate, then sign"] > 0 and seen["Call back"] > 0)
    assert.same({ "Call back", "Negotiate, then sign" }, (function()
      local k = {}
      for name in pairs(seen) do k[#k + 1] = name end
      table.sort(k)
      return k
    end)())
    seen, value = steps(F.eq("NEXT_STEP", F.raw("Call back,Legal review")))
    assert.equal("Call back,Legal review", value)
    assert.is_true(seen["Call back"] > 0 and seen["Legal review"] > 0)
    assert.is_nil(seen["Negotiate, then sign"])
  end)

  it("refuses bad filters before any request", function()
    assert(client:describe(R.tabular_5k.id, { cached = true }))
    org:reset()
    local r, err = client:run_sync(R.tabular_5k.id, { filters = F.eq("STAGE_NAM", "x") })
    assert.is_nil(r)
    assert.equal("invalid", err.kind)
    assert.matches("STAGE_NAME", err.message)
    local _, err2 = client:run_sync(R.tabular_5k.id, { filters = F.lt("CLOSED", true) })
    assert.matches("not allowed", err2.message)
    local _, err3 = client:run_sync(R.tabular_5k.id, { filters = F.eq("DESCRIPTION", "x") })
    assert.matches("not filterable", err3.message)
    assert.equal(0, org:stats().requests)
  end)
end)
