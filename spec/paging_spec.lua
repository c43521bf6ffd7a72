-- client:run_all (sfreports.paging) against the fake org over real HTTP: the rows
-- returned equal the full data set exactly (count, no duplicates, same multiset). The
-- ground truth comes from the same org by another route: one run_sync per calendar
-- quarter of CLOSE_DATE (standard date filter, fixed windows), each of which must come
-- back complete (all_data), with the same caller filters.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local F = require "sfreports.filters"
local json = require "sfreports.json"
local truth = require "paging_truth"

local R = fakeorg.reports
local caller_filters = truth.caller_filters

-- Calendar quarters of 2024-2027 (the fake org's close dates), plus everything before
-- and after, so that no row can fall outside the partition.
local function quarters()
  local out = { { to = "2023-12-31" } }
  for year = 2024, 2027 do
    for q = 0, 3 do
      local m1 = q * 3 + 1
      local last = ({ 31, 30, 30, 31 })[q + 1]
      out[#out + 1] = { from = string.format("%d-%02d-01", year, m1),
        to = string.format("%d-%02d-%02d", year, m1 + 2, last) }
    end
  end
  out[#out + 1] = { from = "2028-01-01" }
  return out
end

describe("run_all: every row past the 2,000-row cap", function()
  local org, client
  local truth_cache = {}

  -- Multiset { tuple = count } and row count of a report under opts (filters/logic).
  local function ground_truth(id, opts)
    local cache_key = id .. json.encode(opts and opts.logic or "") .. tostring(opts ~= nil)
    if truth_cache[cache_key] then return truth_cache[cache_key].set, truth_cache[cache_key].n end
    local set, n = truth.collect(client, id, quarters(), opts and { filters = opts.filters, logic = opts.logic })
    truth_cache[cache_key] = { set = set, n = n }
    return set, n
  end

  -- Drains a paged report; asserts it equals the ground truth exactly.
  local function assert_complete(paged, id, opts)
    local set, expected = ground_truth(id, opts)
    local got, n = {}, 0
    for row in paged:rows() do
      n = n + 1
      assert.equal(n, row.index)
      truth.add(got, row)
    end
    assert.is_nil(paged.error)
    assert.is_true(paged.all_data)
    truth.assert_same(set, expected, got, n)
    return n
  end

  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  it("tabular, 20,000 rows, caller's filters and logic, automatic key (keyset)", function()
    local opts = caller_filters()
    opts.strategy = "keyset" -- the default is planned ranges (spec/paging_plan_spec.lua)
    local paged = assert(client:run_all(R.tabular_20k.id, opts))
    assert.is_false(paged.report.all_data)
    assert.equal("keyset", paged.strategy)
    assert.equal("AMOUNT", paged.keys[1])
    -- rows stream in key order: blank amounts first, then ascending amounts
    local ki
    for i, c in ipairs(paged:columns()) do if c.name == "AMOUNT" then ki = i end end
    local rows_seen, prev = {}, nil
    local n = assert_complete(setmetatable({ rows = function()
      local it = paged:rows()
      return function()
        local row = it()
        if row then
          local v = row.cells[ki].value
          if v ~= sfreports.null then
            assert.is_true(prev == nil or v >= prev, "amounts out of order")
            prev = v
          else
            assert.is_nil(prev, "a blank amount after a non-blank one")
          end
          rows_seen[#rows_seen + 1] = true
        end
        return row
      end
    end }, { __index = paged }), R.tabular_20k.id, opts)
    assert.equal(n, #rows_seen)
    -- totals of the first run cover every row
    assert.equal(n, paged.report:total("RowCount").value)
  end)

  it("a non-unique key only (CLOSE_DATE): ties at every boundary, none lost or repeated", function()
    local paged = assert(client:run_all(R.tabular_5k.id, { key = { "CLOSE_DATE" }, strategy = "keyset" }))
    assert.same({ "CLOSE_DATE" }, paged.keys)
    assert_complete(paged, R.tabular_5k.id, nil)
    assert.is_true(paged.stats.duplicates > 0, "expected boundary rows seen twice and dropped")
    assert.is_true(paged.stats.runs >= 4)
  end)

  it("summary, 5,000 rows, caller's filters: rows keep their groups", function()
    local opts = { filters = { F.ne("FULL_NAME", "Dana Smith"), F.lt("PROBABILITY", 100) }, logic = "1 OR 2" }
    local paged = assert(client:run_all(R.summary_5k.id, opts))
    assert.equal("SUMMARY", paged.report.format)
    assert.equal("ranges", paged.strategy)
    local owners = {}
    local function note(row)
      local g = row.groups[1]
      assert.is_string(g.label)
      assert.equal(row:value("FULL_NAME"), g.value)
      owners[g.label] = true
    end
    local wrapped = setmetatable({ rows = function()
      local it = paged:rows()
      return function()
        local row = it()
        if row then note(row) end
        return row
      end
    end }, { __index = paged })
    local n = assert_complete(wrapped, R.summary_5k.id, opts)
    assert.equal(n, paged.report:total("RowCount").value)
    local count = 0
    for _ in pairs(owners) do count = count + 1 end
    assert.equal(8, count)
  end)

  it("date bisection: ranges on CLOSE_DATE, slices run concurrently", function()
    org:reset()
    -- every run held 0.2 s at the org, so that runs sent together are seen together there
    -- (without it, fast runs on a busy machine could be served one after another)
    org:control("config", { sync_delay = 0.2 })
    finally(function() org:control("config", { sync_delay = 0 }) end)
    local opts = caller_filters()
    opts.key, opts.strategy, opts.concurrency = "CLOSE_DATE", "ranges", 4
    local paged = assert(client:run_all(R.tabular_20k.id, opts))
    assert.equal("CLOSE_DATE", paged.keys[1])
    opts.key, opts.strategy, opts.concurrency = nil, nil, nil
    assert_complete(paged, R.tabular_20k.id, opts)
    assert.is_true(paged.stats.splits >= 1)
    if client.run_many then
      assert.is_true(org:stats().max_concurrent > 1, "slices were not in flight together")
    end
  end)

  it("one key value with more than 2,000 rows is split on the next key", function()
    local opts = caller_filters()
    opts.key = { "PROBABILITY", "CLOSE_DATE" }
    local paged = assert(client:run_all(R.tabular_20k.id, opts))
    opts.key = nil
    assert_complete(paged, R.tabular_20k.id, opts)
    assert.is_true(paged.stats.splits >= 2)
  end)

  it("never presents a truncated result as complete: limit error when no key can split", function()
    local paged = assert(client:run_all(R.tabular_20k.id, { key = { "PROBABILITY" } }))
    local n = 0
    for _ in paged:rows() do n = n + 1 end
    assert.is_table(paged.error)
    assert.equal("limit", paged.error.kind)
    assert.is_false(paged.all_data)
    assert.is_true(n < 20000)
    -- the eager form returns the error
    local ok, err = client:run_all(R.tabular_20k.id, { key = { "PROBABILITY" }, on_page = function() end })
    assert.is_nil(ok)
    assert.equal("limit", err.kind)
  end)

  it("hands rows over page by page (on_page), each page within the cap", function()
    local pages, total = 0, 0
    local paged = assert(client:run_all(R.tabular_5k.id, { on_page = function(rows, info)
      pages = pages + 1
      assert.is_true(#rows <= 2000)
      assert.equal(pages, info.index)
      total = total + #rows
    end }))
    assert.is_true(paged.all_data)
    assert.equal(5000, total)
    assert.is_true(pages >= 3)
  end)

  it("streams into a writer", function()
    local lines = 0
    local paged = assert(client:run_all(R.tabular_5k.id, { key = "CREATED_DATE" }))
    local n = assert(paged:write("jsonl", function(chunk)
      local _, c = chunk:gsub("\n", "")
      lines = lines + c
    end))
    assert.equal(5000, n)
    assert.equal(5000, lines)
  end)

  it("a complete report is one page", function()
    local paged = assert(client:run_all(R.tabular_small.id, { strategy = "keyset" }))
    local n = 0
    for _ in paged:rows() do n = n + 1 end
    assert.equal(40, n)
    assert.is_true(paged.all_data)
    assert.equal(1, paged.stats.runs)
  end)

  it("adds a key column the report does not show", function()
    local paged = assert(client:run_all(R.summary_5k.id, { key = "CREATED_DATE" }))
    assert.same({ "CREATED_DATE" }, paged.added_columns)
    local cols = paged:columns()
    assert.equal("CREATED_DATE", cols[#cols].name)
    local n = 0
    for _ in paged:rows() do n = n + 1 end
    assert.equal(5000, n)
    assert.is_true(paged.all_data)
  end)

  it("rejects keys that cannot page and options that cannot apply", function()
    local p, err = client:run_all(R.tabular_5k.id, { key = "OPPORTUNITY_NAME" })
    assert.is_nil(p)
    assert.equal("invalid", err.kind)
    p, err = client:run_all(R.summary_5k.id, { strategy = "keyset" })
    assert.is_nil(p)
    assert.equal("invalid", err.kind)
    assert.has_error(function() client:run_all(R.tabular_5k.id, { sort = "AMOUNT" }) end)
    assert.has_error(function() client:run_all(R.tabular_5k.id, { bogus = 1 }) end)
  end)
end)
