-- client:run_all with planned ranges (sfreports.paging.plan) against the fake org over
-- real HTTP: one planning run counts the rows per day of the key, the slices run
-- concurrently, and the rows returned equal the ground truth exactly (same multiset),
-- with caller filters and logic, ties, blank keys, 100,000 rows, and data changed
-- between the plan and the fetch. The ground truth comes from the same org by another
-- route: one run_sync per fixed window of CLOSE_DATE (standard date filter), each of
-- which must come back complete. Concurrency is proven by what the server saw.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local json = require "sfreports.json"
local P = require "sfreports.paging.plan"
local truth = require "paging_truth"

local R = fakeorg.reports
local caller_filters = truth.caller_filters

local function iso(z) return os.date("!%Y-%m-%d", z * 86400) end

-- Windows of `days` days of CLOSE_DATE over 2024-2027, plus everything before and after;
-- the day `single` (ISO) is a window of its own.
local function windows(days, single)
  local out = { { to = "2023-12-31" } }
  local z, last = P.day_number("2024-01-01"), P.day_number("2027-12-31")
  local s = single and P.day_number(single)
  while z <= last do
    local e = math.min(z + days - 1, last)
    if s and s >= z and s <= e then
      if s > z then out[#out + 1] = { from = iso(z), to = iso(s - 1) } end
      out[#out + 1] = { from = single, to = single }
      if s < e then out[#out + 1] = { from = iso(s + 1), to = iso(e) } end
    else
      out[#out + 1] = { from = iso(z), to = iso(e) }
    end
    z = z + days
  end
  out[#out + 1] = { from = "2028-01-01" }
  return out
end

describe("run_all: planned ranges", function()
  local org, client

  -- Multiset { tuple = count } and row count of a report under run options `o` (filters,
  -- logic, columns), from windows of `days` days that each come back complete.
  local function ground_truth(id, o, days, single)
    return truth.collect(client, id, windows(days or 91, single), o)
  end

  -- Drains paged (checking the key order: blanks first, then ascending) and compares it
  -- with the ground truth taken afterwards. Returns the row count.
  local function assert_complete(paged, id, o, days, single, on_drained)
    local ki
    for i, c in ipairs(paged:columns()) do if c.name == paged.keys[1] then ki = i end end
    assert.is_number(ki)
    local got, n, prev, seen_value = {}, 0, nil, false
    for row in paged:rows() do
      n = n + 1
      assert.equal(n, row.index)
      local v = row.data_cells[ki].value
      if type(v) == "table" then v = v.amount end
      if v == sfreports.null or v == "" then
        assert.is_false(seen_value, "a blank key after a non-blank one")
      else
        seen_value = true
        assert.is_true(prev == nil or v >= prev, "keys out of order")
        prev = v
      end
      truth.add(got, row)
    end
    assert.is_nil(paged.error)
    assert.is_true(paged.all_data)
    if on_drained then on_drained(n) end
    local set, expected = ground_truth(id, o, days, single)
    truth.assert_same(set, expected, got, n)
    return n
  end

  -- The bodies of the planning runs the server saw (SUMMARY, no detail rows).
  local function planning_bodies()
    local out = {}
    for _, b in ipairs(org:bodies()) do
      local md = type(b.body) == "string" and fakeorg.decode(b.body).reportMetadata
      if md and md.reportFormat == "SUMMARY" and md.hasDetailRows == false then out[#out + 1] = md end
    end
    return out
  end

  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token, retry_base = 0.05 }))
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  before_each(function() org:reset() end)

  it("cuts slices from counts", function()
    local groups = { { value = nil, count = 5 }, { value = "2024-01-01", count = 1000 },
      { value = "2024-01-02", count = 400 }, { value = "2024-01-03", count = 200 },
      { value = "2024-01-04", count = 3000 }, { value = "2024-01-05", count = 10 } }
    local slices = P.cut(groups, 1500)
    assert.same({ { lo = nil, hi = "2024-01-03", count = 1400 }, { lo = "2024-01-03", hi = "2024-01-04", count = 200 },
      { lo = "2024-01-04", hi = "2024-01-05", count = 3000 }, { lo = "2024-01-05", count = 10 } }, slices)
    local work = P.work(groups, "CLOSE_DATE", 1500)
    assert.equal(5, #work)
    assert.same({ kind = "run", conds = { { column = "CLOSE_DATE", operator = "equals", value = "" } }, level = 2,
      planned = 5 }, work[1])
    assert.same({ { column = "CLOSE_DATE", operator = "greaterOrEqual", value = "2024-01-03" },
      { column = "CLOSE_DATE", operator = "lessThan", value = "2024-01-04" } }, work[3].conds)
    assert.same({ { column = "CLOSE_DATE", operator = "notEqual", value = "" },
      { column = "CLOSE_DATE", operator = "lessThan", value = "2024-01-03" } }, work[2].conds)
    assert.same({ { lo = nil, count = 0 } }, P.cut({}, 1500))
    assert.equal("Day", P.granularity("2024-01-01", "2027-12-31"))
    assert.equal("Month", P.granularity("1990-01-01", "2027-12-31"))
    assert.equal("Year", P.granularity("1700-01-01", "2027-12-31"))
    assert.equal("Day", P.granularity(nil, nil))
    assert.equal(0, P.day_number("1970-01-01"))
    assert.equal(19783, P.day_number("2024-03-01"))
  end)

  it("the CLI's progress line: rows, pages, runs, and slices done / planned when planned", function()
    local progress = require "sfreports.cli.progress"
    assert.equal("sfreports: --all: 4,500 rows, 3 pages, 4 report runs, 3/15 slices, 1.5 s",
      progress.line(4500, { slices = 15, slices_done = 3, rows = 4500, pages = 3, runs = 4 }, "planned", 1.5))
    assert.equal("sfreports: --all: 1,234,567 rows, 1 page, 1 report run, 0.0 s",
      progress.line(1234567, { slices = 0, slices_done = 0, rows = 1234567, pages = 1, runs = 1 }, "keyset", 0))
  end)

  it("the fake org counts rows per day, month and year of a date column", function()
    local total = 0
    for _, g in ipairs({ "Day", "Month", "Year" }) do
      local md = P.metadata({ detailColumns = json.array({ "AMOUNT" }) }, "CLOSE_DATE", g)
      local report = assert(client:run_sync(R.tabular_20k.id, { metadata = md, details = false }))
      assert.equal("SUMMARY", report.format)
      local groups, sum = assert(P.groups(report, "CLOSE_DATE"))
      assert.equal(20000, sum)
      assert.equal(({ Day = 1460, Month = 48, Year = 4 })[g], #groups)
      for _, x in ipairs(groups) do total = total + x.count end
      if g == "Month" then
        assert.equal("2024-01-01", groups[1].value)
        assert.is_true(groups[1].count > 2000 / 48)
      end
    end
    assert.equal(60000, total)
    -- a result that is not a count per group is refused (the pager then falls back)
    local report = assert(client:run_sync(R.summary_1.id, { details = false }))
    assert.is_nil(P.groups(report, "CLOSE_DATE"))
  end)

  it("tabular, 20,000 rows, caller's filters and logic: planned, slices in flight together", function()
    assert.is_true(org:control("config", { sync_delay = 0.2 }).ok)
    local opts = caller_filters()
    local paged = assert(client:run_all(R.tabular_20k.id, opts))
    assert.equal("planned", paged.strategy)
    assert.equal("CLOSE_DATE", paged.keys[1])
    assert.equal("Day", paged.plan.granularity)
    assert.is_true(paged.plan.rows > 2000)
    assert.equal(paged.report:total("RowCount").value, paged.plan.rows)
    -- the planning run: the caller's filters and logic, grouped by day, counting rows
    local bodies = planning_bodies()
    assert.equal(1, #bodies)
    local md = bodies[1]
    assert.same({ "RowCount" }, md.aggregates)
    assert.equal("CLOSE_DATE", md.groupingsDown[1].name)
    assert.equal("Day", md.groupingsDown[1].dateGranularity)
    assert.equal(3, #md.reportFilters)
    assert.equal("(1 OR 3) AND 2", md.reportBooleanFilter)
    local stats
    local n = assert_complete(paged, R.tabular_20k.id, opts, nil, nil, function() stats = org:stats() end)
    assert.is_true(paged.stats.slices >= math.ceil(n / 1500))
    assert.equal(paged.stats.slices, paged.stats.slices_done)
    assert.equal(0, paged.stats.duplicates)
    assert.equal(0, paged.stats.splits)
    -- every run the pager counted is one the server ran, the planning run included
    assert.equal(paged.stats.runs, stats.sync_runs)
    assert.equal(2 + paged.stats.slices, paged.stats.runs)
    assert.is_true(stats.max_concurrent >= 4, "slices were not in flight together: " .. stats.max_concurrent)
    assert.is_true(stats.max_concurrent <= 8)
  end)

  it("concurrency caps the slices in flight (as the server saw them)", function()
    assert.is_true(org:control("config", { sync_delay = 0.2 }).ok)
    local paged = assert(client:run_all(R.tabular_20k.id, { concurrency = 3 }))
    local stats
    assert_complete(paged, R.tabular_20k.id, nil, nil, nil, function() stats = org:stats() end)
    assert.equal(3, stats.max_concurrent)
  end)

  it("ties and blank keys: a date key with nulls, blanks split on the next key", function()
    local cols = { "OPPORTUNITY_ID", "OPPORTUNITY_NAME", "AMOUNT", "CLOSE_DATE", "LAST_ACTIVITY", "STAGE_NAME" }
    local o = { columns = cols }
    local paged = assert(client:run_all(R.tabular_20k.id, { columns = cols, key = { "LAST_ACTIVITY", "AMOUNT" } }))
    assert.equal("planned", paged.strategy)
    assert.same({ "LAST_ACTIVITY", "AMOUNT" }, paged.keys)
    assert_complete(paged, R.tabular_20k.id, o)
    -- about 5,000 blank last activities: more than one run holds, so they were split
    assert.is_true(paged.stats.splits >= 1)
  end)

  it("data changed between the plan and the fetch: a slice over the cap is cut again", function()
    local opts = caller_filters()
    local paged = assert(client:run_all(R.tabular_20k.id, opts))
    assert.equal("planned", paged.strategy)
    -- after the plan: 1,900 more rows on one day (qualifying ones among them), every 7th gone
    local answer = org:control("data", { report = "tabular_20k", add = 1900, add_close_date = "2025-06-15",
      remove_every = 7 })
    assert.is_true(answer.ok)
    local n = assert_complete(paged, R.tabular_20k.id, opts, 30, "2025-06-15")
    assert.is_true(n ~= paged.plan.rows)
    assert.is_true(paged.stats.splits >= 1, "the grown slice was not split")
    assert.equal(0, paged.stats.duplicates)
  end)

  it("a limit error pauses the slices and they go again after the backoff", function()
    assert.is_true(org:control("config", { sync_delay = 0.05 }).ok)
    -- after the first run, the plan and two slices: the next two runs are refused
    assert.is_true(org:control("fault", { kind = "limit", count = 2, after = 4, path = "/analytics/reports/" }).ok)
    local paged = assert(client:run_all(R.tabular_20k.id, {}))
    assert.equal("planned", paged.strategy)
    local stats
    assert_complete(paged, R.tabular_20k.id, nil, nil, nil, function() stats = org:stats() end)
    -- two runs were refused (not run), then ran after the pause: no error, every row
    assert.equal(paged.stats.runs, stats.sync_runs)
    assert.equal(paged.stats.runs + 2, stats.requests)
    assert.equal(2, paged.stats.paused)
  end)

  it("max_runs counts the planning run", function()
    local paged = assert(client:run_all(R.tabular_20k.id, { max_runs = 9, concurrency = 8 }))
    assert.equal(2, paged.stats.runs)
    local n = 0
    for _ in paged:rows() do n = n + 1 end
    assert.equal(0, n)
    assert.equal("limit", paged.error.kind)
    assert.equal(2, org:stats().sync_runs)
  end)

  it("falls back to keyset when the key cannot be grouped (a number)", function()
    local paged = assert(client:run_all(R.tabular_5k.id, { key = { "AMOUNT", "CLOSE_DATE" } }))
    assert.equal("keyset", paged.strategy)
    assert.is_nil(paged.plan)
    assert.equal(0, #planning_bodies())
    assert_complete(paged, R.tabular_5k.id, nil)
  end)

  it("100,000 rows: planned, every row once", function()
    assert.is_true(org:control("config", { sync_delay = 0.05 }).ok)
    local paged = assert(client:run_all(R.tabular_100k.id, {}))
    assert.equal("planned", paged.strategy)
    assert.equal(100000, paged.plan.rows)
    local stats
    local n = assert_complete(paged, R.tabular_100k.id, nil, 25, nil, function() stats = org:stats() end)
    assert.equal(100000, n)
    assert.is_true(paged.stats.slices >= 67)
    assert.is_true(stats.max_concurrent >= 4)
  end)
end)
