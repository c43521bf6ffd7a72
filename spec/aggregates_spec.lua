-- Run-time aggregates end to end: the aggregates run option (builders, raw identifiers,
-- added to or replacing the saved ones) sent to the fake org, and every aggregate value
-- that comes back (grand total, each group, each matrix cell) compared with the same
-- aggregate computed here, independently, from the detail rows of the same run. Also the
-- summary rows in every writer format, run_async, query, run_all, run_many, the exact
-- bodies sent, and the `invalid` errors raised before anything is sent.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local F = require "sfreports.filters"
local summary = require "sfreports.summary"
local cjson = require "cjson"

local null = sfreports.null

local function amount(v)
  if type(v) == "table" then return v.amount end
  return v
end

-- The detail rows of a report as { key =, down =, across =, r = { COLUMN = cell } }.
local function detail_rows(report)
  local out, cols = {}, {}
  for i, c in ipairs(report:columns()) do cols[c.name] = i end
  for row in report:rows() do
    local r = {}
    for name, i in pairs(cols) do r[name] = row.cells[i] end
    local d, a = row.key:match("^(.-)!(.*)$")
    out[#out + 1] = { key = row.key, down = d, across = a, r = r }
  end
  return out
end

-- Whether path `p` (a fact-map key half of a row, e.g. "0_1") lies under `k` ("T", "0").
local function under(p, k)
  return k == "T" or p == k or p:sub(1, #k + 1) == k .. "_"
end

-- The aggregate `name` computed from rows, as Salesforce defines it (nulls skipped).
local function compute(name, rows)
  if name == "RowCount" then return #rows end
  local op, col = name:match("^(%a)!(.+)$")
  local n, sum, min, max, seen, uniq = 0, 0, nil, nil, {}, 0
  for _, row in ipairs(rows) do
    local cell = row.r[col]
    assert(cell, "column " .. col .. " is not a detail column")
    local v = cell.value
    if v ~= null and v ~= nil then
      if op == "u" then
        local k = cell.id or tostring(amount(v))
        if not seen[k] then seen[k], uniq = true, uniq + 1 end
      else
        v = amount(v)
        n, sum = n + 1, type(v) == "number" and sum + v or sum
        if min == nil or v < min then min = v end
        if max == nil or v > max then max = v end
      end
    end
  end
  if op == "s" then return sum end
  if op == "a" then return n > 0 and sum / n or 0 end
  if op == "m" then return min == nil and null or min end
  if op == "x" then return max == nil and null or max end
  return uniq
end

local function same(expected, got, what)
  got = amount(got)
  if type(expected) == "number" and type(got) == "number" then
    assert(math.abs(expected - got) < 0.006, what .. ": expected " .. expected .. ", got " .. got)
  else
    assert(expected == got, what .. ": expected " .. tostring(expected) .. ", got " .. tostring(got))
  end
end

-- Every entry's every aggregate against the independent computation. Returns the count
-- of values compared.
local function check_all(report, names)
  local rows = detail_rows(report)
  local n = 0
  for _, e in ipairs(report:groups()) do
    local subset = {}
    for _, r in ipairs(rows) do
      if under(r.down, e.down_key) and under(r.across, e.across_key) then subset[#subset + 1] = r end
    end
    for _, name in ipairs(names) do
      local a = e.aggregates[name]
      assert(a, "entry " .. e.key .. " has no aggregate " .. name)
      same(compute(name, subset), a.value, e.key .. " " .. name)
      n = n + 1
    end
  end
  return n
end

local LABELS = {
  ["RowCount"] = "Record Count", ["s!AMOUNT"] = "Sum of Amount", ["a!AMOUNT"] = "Average Amount",
  ["m!CLOSE_DATE"] = "Min of Close Date", ["x!PROBABILITY"] = "Max of Probability (%)",
  ["u!ACCOUNT_NAME"] = "Unique Account Name", ["a!PROBABILITY"] = "Average Probability (%)",
  ["x!AMOUNT"] = "Max of Amount", ["m!AMOUNT"] = "Min of Amount",
}

local function last_body(org, pattern)
  local list = org:bodies()
  for i = #list, 1, -1 do
    if list[i].method == "POST" and list[i].uri:find(pattern) then return list[i] end
  end
  error("no request matching " .. pattern)
end

describe("run-time aggregates against the fake org", function()
  local org, client
  local R = fakeorg.reports
  local SIX = { F.sum("AMOUNT"), F.avg("Amount"), F.min("Close Date"), F.max("PROBABILITY"),
    F.unique("ACCOUNT_NAME"), "RowCount" }
  local SIX_NAMES = { "s!AMOUNT", "a!AMOUNT", "m!CLOSE_DATE", "x!PROBABILITY", "u!ACCOUNT_NAME", "RowCount" }

  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)

  teardown(function()
    client:close()
    org:stop()
  end)

  it("a tabular report: the grand total of each aggregate matches the rows, with Salesforce's labels", function()
    local report = assert(client:run_sync(R.tabular_small.id, { aggregates = SIX, replace_aggregates = true }))
    assert.is_true(report.all_data)
    local cols = report:aggregate_columns()
    assert.equal(6, #cols)
    for i, name in ipairs(SIX_NAMES) do
      assert.equal(name, cols[i].name)
      assert.equal(LABELS[name], cols[i].label)
      assert.equal(LABELS[name], report:total(name).column.label)
    end
    assert.equal(6, check_all(report, SIX_NAMES))
    assert.equal(40, report:total("RowCount").value)
    -- exactly the list asked for, in order, went out
    local body = cjson.decode(last_body(org, "/reports/" .. R.tabular_small.id).body)
    assert.same(SIX_NAMES, body.reportMetadata.aggregates)
  end)

  it("added to the saved ones by default, duplicates once, raw identifiers resolved by label", function()
    local report = assert(client:run_sync(R.summary_1.id, { aggregates = { "x!Amount", F.sum("AMOUNT"), "m!AMOUNT" } }))
    local body = cjson.decode(last_body(org, "/reports/" .. R.summary_1.id).body)
    assert.same({ "s!AMOUNT", "RowCount", "x!AMOUNT", "m!AMOUNT" }, body.reportMetadata.aggregates)
    local names = {}
    for i, c in ipairs(report:aggregate_columns()) do names[i] = c.name end
    assert.same({ "s!AMOUNT", "RowCount", "x!AMOUNT", "m!AMOUNT" }, names)
    -- every stage group and the grand total
    assert.is_true(check_all(report, names) >= 4 * 10)
  end)

  it("a summary report with three levels: every subtotal and the grand total match", function()
    local report = assert(client:run_sync(R.summary_3.id, {
      aggregates = { F.max("AMOUNT"), F.unique("ACCOUNT_NAME"), F.min("CLOSE_DATE") } }))
    assert.is_true(report.all_data)
    local names = { "s!AMOUNT", "a!PROBABILITY", "RowCount", "x!AMOUNT", "u!ACCOUNT_NAME", "m!CLOSE_DATE" }
    local n = check_all(report, names)
    assert.is_true(n > 6 * 100, "compared " .. n)
    assert.equal(1500, report:total("RowCount").value)
    assert.equal("Unique Account Name", report:total("u!ACCOUNT_NAME").column.label)
  end)

  it("a matrix report: every cell, subtotal and total of the grid match (empty cells included)", function()
    local report = assert(client:run_sync(R.matrix.id, {
      aggregates = { F.avg("AMOUNT"), F.max("AMOUNT"), F.min("CLOSE_DATE") }, replace_aggregates = { "s!AMOUNT" } }))
    local names = { "RowCount", "a!AMOUNT", "x!AMOUNT", "m!CLOSE_DATE" }
    local cols = {}
    for i, c in ipairs(report:aggregate_columns()) do cols[i] = c.name end
    assert.same(names, cols)
    local n = check_all(report, names)
    assert.is_true(n > 4 * 50, "compared " .. n)
    -- the grid reads the same values
    local grid = report:grid("x!AMOUNT")
    local total = report:total("x!AMOUNT").value
    assert.equal(total, grid.values[#grid.down][#grid.across])
  end)

  it("the summary rows carry the same numbers in every writer format", function()
    local report = assert(client:run_sync(R.summary_1.id,
      { aggregates = { F.avg("AMOUNT"), F.unique("ACCOUNT_NAME") } }))
    local rows = detail_rows(report)
    local expected = {}  -- stage label ("" for the total) -> aggregate name -> value
    for _, e in ipairs(report:groups()) do
      local subset = {}
      for _, r in ipairs(rows) do
        if under(r.down, e.down_key) then subset[#subset + 1] = r end
      end
      local stage = e.down[1] and e.down[1].label or ""
      expected[stage] = {}
      for _, name in ipairs({ "s!AMOUNT", "RowCount", "a!AMOUNT", "u!ACCOUNT_NAME" }) do
        expected[stage][name] = compute(name, subset)
      end
    end
    local names = { "s!AMOUNT", "RowCount", "a!AMOUNT", "u!ACCOUNT_NAME" }
    for _, fmt in ipairs({ "csv", "tsv", "json", "jsonl", "table" }) do
      local parts = {}
      local n = assert(summary.write(fmt, report, function(chunk) parts[#parts + 1] = chunk end, { raw = true }))
      local text = table.concat(parts)
      assert.equal(#report:groups(), n, fmt)
      local got = {}
      if fmt == "json" or fmt == "jsonl" then
        local list = fmt == "json" and cjson.decode(text) or {}
        if fmt == "jsonl" then for line in text:gmatch("[^\n]+") do list[#list + 1] = cjson.decode(line) end end
        for _, obj in ipairs(list) do
          local stage = obj.STAGE_NAME == cjson.null and "" or obj.STAGE_NAME
          got[stage] = obj
        end
      else
        local lines = {}
        for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
        local first = 2
        if fmt == "table" then
          assert.matches("^Stage%s+Sum of Amount%s+Record Count%s+Average Amount%s+Unique Account Name$", lines[1])
          assert.matches("^%-[%- ]+$", lines[2])
          first = 3
        else
          local sep = fmt == "csv" and "," or "\t"
          assert.equal(table.concat({ "Stage", "Sum of Amount", "Record Count", "Average Amount",
            "Unique Account Name" }, sep), lines[1])
        end
        for i = first, #lines do
          local f = {}
          if fmt == "table" then
            -- aligned: the stage first, the four numbers right-aligned after it
            for word in lines[i]:gmatch("%S+") do f[#f + 1] = word end
            f = { table.concat(f, " ", 1, #f - 4), f[#f - 3], f[#f - 2], f[#f - 1], f[#f] }
          else
            local sep = fmt == "csv" and "," or "\t"
            for field in (lines[i] .. sep):gmatch("(.-)" .. sep) do f[#f + 1] = field end
          end
          got[f[1]] = { ["s!AMOUNT"] = tonumber(f[2]), RowCount = tonumber(f[3]),
            ["a!AMOUNT"] = tonumber(f[4]), ["u!ACCOUNT_NAME"] = tonumber(f[5]) }
        end
        assert.equal(#report:groups(), #lines - first + 1, fmt)
      end
      for stage, want in pairs(expected) do
        assert(got[stage], fmt .. ": no summary row for " .. stage)
        for _, name in ipairs(names) do same(want[name], got[stage][name], fmt .. " " .. stage .. " " .. name) end
      end
    end
  end)

  it("run_async carries the aggregates and its result matches", function()
    org:control("config", { async_delay = 0 })
    local inst = assert(client:run_async(R.summary_1.id, { aggregates = { F.max("PROBABILITY") } }))
    local report = assert(inst:wait({ timeout = 10 }))
    assert.is_true(check_all(report, { "s!AMOUNT", "RowCount", "x!PROBABILITY" }) > 3)
    local body = cjson.decode(last_body(org, "/instances").body)
    assert.same({ "s!AMOUNT", "RowCount", "x!PROBABILITY" }, body.reportMetadata.aggregates)
  end)

  it("query takes aggregates on hand-built metadata (API names)", function()
    local md = { reportType = { type = "Opportunity" }, reportFormat = "SUMMARY",
      detailColumns = { "OPPORTUNITY_NAME", "AMOUNT", "ACCOUNT_NAME" },
      groupingsDown = { { name = "TYPE", sortOrder = "Asc", dateGranularity = "None" } },
      aggregates = { "RowCount" } }
    local report = assert(client:query(md, { filters = { F.eq("STAGE_NAME", "Closed Won") },
      aggregates = { F.sum("AMOUNT"), F.unique("ACCOUNT_NAME") } }))
    assert.is_true(report.all_data)
    assert.is_true(check_all(report, { "RowCount", "s!AMOUNT", "u!ACCOUNT_NAME" }) >= 3 * 2)
  end)

  it("run_all: the first run's totals over every row match the rows of every page", function()
    local paged = assert(client:run_all(R.tabular_5k.id,
      { aggregates = { F.max("AMOUNT"), F.unique("ACCOUNT_NAME") } }))
    local rows = {}
    local cols = {}
    for i, c in ipairs(paged.report:columns()) do cols[c.name] = i end
    for row in paged:rows() do
      local r = {}
      for name, i in pairs(cols) do r[name] = row.cells[i] end
      rows[#rows + 1] = { r = r }
    end
    assert.is_nil(paged.error)
    assert.equal(5000, #rows)
    assert.is_false(paged.report.all_data)
    for _, name in ipairs({ "s!AMOUNT", "RowCount", "x!AMOUNT", "u!ACCOUNT_NAME" }) do
      same(compute(name, rows), paged.report:total(name).value, "run_all " .. name)
    end
  end)

  it("run_many: entries with their own aggregates", function()
    local reports, errs = client:run_many({
      { id = R.tabular_small.id, aggregates = { F.min("AMOUNT") } },
      { id = R.summary_1.id, aggregates = { F.avg("PROBABILITY") }, replace_aggregates = true },
      { id = R.summary_1.id, aggregates = { F.sum("DESCRIPTION") } },
    })
    assert.is_nil(errs[1])
    assert.equal(3, check_all(reports[1], { "s!AMOUNT", "RowCount", "m!AMOUNT" }) )
    assert.is_true(check_all(reports[2], { "a!PROBABILITY" }) > 1)
    assert.is_nil(reports[2]:total("s!AMOUNT"))
    assert.equal("invalid", errs[3].kind)
  end)

  describe("refused before anything is sent", function()
    local function refused(id, opts, pattern, fields)
      local run_path = "/services/data/v" .. client.api_version .. "/analytics/reports/" .. id
      local before = org:stats().by_path[run_path] or 0
      local r, err = client:run_sync(id, opts)
      assert.is_nil(r)
      assert.equal("invalid", err.kind)
      assert.matches(pattern, err.message)
      for k, v in pairs(fields or {}) do assert.same(v, err[k]) end
      -- the run itself never went out (only the describe may have)
      assert.equal(before, org:stats().by_path[run_path] or 0)
      return err
    end

    it("an unknown column, with suggestions", function()
      local err = refused(R.summary_1.id, { aggregates = { F.sum("AMOUNTT") } },
        "unknown column 'AMOUNTT' in aggregates; did you mean 'AMOUNT' %(Amount%)")
      assert.equal("aggregates", err.option)
      assert.same({ "AMOUNT" }, { err.suggestions[1] })
    end)

    it("sum or average on a text column, unique on a long text area", function()
      refused(R.summary_1.id, { aggregates = { F.sum("STAGE_NAME") } },
        "aggregate 's!STAGE_NAME' %(sum%) is not allowed on column 'STAGE_NAME' %(Stage%) of type picklist",
        { column = "STAGE_NAME", aggregate = "s!STAGE_NAME" })
      refused(R.summary_1.id, { aggregates = { "a!ACCOUNT_NAME" } }, "not allowed on column 'ACCOUNT_NAME'")
      refused(R.summary_1.id, { aggregates = { F.max("CLOSED") } }, "max takes int, double, currency, percent, date")
      refused(R.summary_1.id, { aggregates = { F.unique("DESCRIPTION") } }, "not unique%-countable")
    end)

    it("a joined report, and a grouping sorted by an aggregate the run drops", function()
      refused(R.joined.id, { aggregates = { F.sum("AMOUNT") } }, "joined %(MULTI_BLOCK%) report cannot take")
      refused(R.summary_1.id, { replace_aggregates = { "s!AMOUNT" },
        groupings = { { name = "STAGE_NAME", sortAggregate = "s!AMOUNT" } } },
        "grouping 'STAGE_NAME' is sorted by aggregate 's!AMOUNT', which the run no longer has")
    end)

    it("unknown identifiers and replace lists that name nothing saved", function()
      refused(R.summary_1.id, { aggregates = { "FORMULA9" } }, "unknown aggregate 'FORMULA9'")
      refused(R.summary_1.id, { replace_aggregates = { "x!AMOUNT" } },
        "replace_aggregates names 'x!AMOUNT', but the report has no such saved aggregate %(saved: s!AMOUNT, RowCount%)")
      -- a column name drops every saved aggregate on it
      local report = assert(client:run_sync(R.summary_3.id, { replace_aggregates = { "Amount" } }))
      local names = {}
      for i, c in ipairs(report:aggregate_columns()) do names[i] = c.name end
      assert.same({ "a!PROBABILITY", "RowCount" }, names)
    end)

    it("misuse raises naming the option", function()
      assert.has_error(function() client:run_sync(R.summary_1.id, { aggregates = "s!AMOUNT" }) end,
        "sfreports: option 'aggregates' for run_sync must be a table, got string")
      assert.has_error(function() client:run_sync(R.summary_1.id, { aggregates = { 42 } }) end)
      assert.has_error(function() F.sum() end)
      assert.has_error(function() F.max("A", "B") end)
      assert.equal("x!AMOUNT", tostring(F.max("AMOUNT")))
    end)
  end)
end)
