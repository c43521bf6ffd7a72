-- fakeorg.catalog: the saved reports of the fake org. Ids are fixed 18-character ids
-- (15-char base + case checksum) and are listed in fakeorg/README.md and in
-- spec/support/fakeorg.lua. Each report names its data set (seed, size).
local ids = require "sfreports.ids"

local catalog = {}

local SMALL_COLUMNS = { "OPPORTUNITY_NAME", "ACCOUNT_NAME", "FULL_NAME", "STAGE_NAME", "AMOUNT",
  "CLOSE_DATE", "PROBABILITY", "TYPE", "CLOSED", "DESCRIPTION", "COMPETITORS" }

local WIDE_COLUMNS = { "OPPORTUNITY_ID", "OPPORTUNITY_NAME", "ACCOUNT_NAME", "FULL_NAME",
  "STAGE_NAME", "AMOUNT", "EXP_AMOUNT", "CLOSE_DATE", "CREATED_DATE", "LAST_ACTIVITY",
  "PROBABILITY", "TYPE", "LEAD_SOURCE", "FORECAST_CATEGORY", "CLOSED", "WON", "DESCRIPTION",
  "NEXT_STEP", "FISCAL_QUARTER", "AGE", "QUANTITY", "INDUSTRY", "BILLING_CITY",
  "BILLING_COUNTRY", "CAMPAIGN_SOURCE" }

local MEDIUM_COLUMNS = { "OPPORTUNITY_ID", "OPPORTUNITY_NAME", "ACCOUNT_NAME", "FULL_NAME",
  "STAGE_NAME", "AMOUNT", "CLOSE_DATE", "CREATED_DATE", "PROBABILITY", "TYPE", "LEAD_SOURCE",
  "CLOSED", "DESCRIPTION", "BILLING_COUNTRY" }

local GROUPED_COLUMNS = { "OPPORTUNITY_NAME", "ACCOUNT_NAME", "FULL_NAME", "AMOUNT",
  "CLOSE_DATE", "PROBABILITY", "DESCRIPTION" }

local function g(name, granularity, order)
  return { name = name, dateGranularity = granularity or "None", sortOrder = order or "Asc" }
end

local SUM_COUNT = { "s!AMOUNT", "RowCount" }

-- key, 15-char id, name, format, seed, size, detail columns, extra fields
local REPORTS = {
  { "tabular_small", "00OFk00000A0001", "Small Tabular Pipeline", "TABULAR", 11, 40, SMALL_COLUMNS },
  { "tabular_wide", "00OFk00000A0002", "Wide Opportunity Export", "TABULAR", 12, 2000, WIDE_COLUMNS },
  { "tabular_5k", "00OFk00000A0003", "Opportunities 5k", "TABULAR", 13, 5000, MEDIUM_COLUMNS },
  { "tabular_20k", "00OFk00000A0004", "Opportunities 20k", "TABULAR", 14, 20000, MEDIUM_COLUMNS },
  { "tabular_100k", "00OFk00000A0005", "Opportunities 100k", "TABULAR", 15, 100000, MEDIUM_COLUMNS },
  { "summary_1", "00OFk00000B0001", "Pipeline by Stage", "SUMMARY", 21, 120, GROUPED_COLUMNS,
    { groupingsDown = { g("STAGE_NAME") } } },
  { "summary_3", "00OFk00000B0002", "Pipeline by Type, Stage and Lead Source", "SUMMARY", 22, 1500,
    GROUPED_COLUMNS,
    { groupingsDown = { g("TYPE"), g("STAGE_NAME"), g("LEAD_SOURCE") },
      aggregates = { "s!AMOUNT", "a!PROBABILITY", "RowCount" } } },
  { "summary_5k", "00OFk00000B0003", "Opportunities by Owner 5k", "SUMMARY", 23, 5000, GROUPED_COLUMNS,
    { groupingsDown = { g("FULL_NAME") } } },
  { "matrix", "00OFk00000C0001", "Pipeline Matrix by Quarter", "MATRIX", 31, 600,
    { "OPPORTUNITY_NAME", "ACCOUNT_NAME", "AMOUNT", "CLOSE_DATE", "STAGE_NAME" },
    { groupingsDown = { g("TYPE"), g("STAGE_NAME") },
      groupingsAcross = { g("CLOSE_DATE", "FiscalQuarter") } } },
  { "joined", "00OFk00000D0001", "Won vs Open (joined)", "MULTI_BLOCK", 41, 300, GROUPED_COLUMNS },
  { "slow", "00OFk00000E0001", "Slow Report", "TABULAR", 51, 25, SMALL_COLUMNS, { slow = true } },
  { "async_error", "00OFk00000E0002", "Async Run Fails", "TABULAR", 52, 25, SMALL_COLUMNS,
    { async = "error" } },
  { "never_done", "00OFk00000E0003", "Async Run Never Finishes", "TABULAR", 53, 25, SMALL_COLUMNS,
    { async = "never" } },
  -- saved filters with saved logic, for merging run-time filters into them
  { "filtered", "00OFk00000F0001", "Filtered Pipeline", "TABULAR", 61, 600, MEDIUM_COLUMNS,
    { reportFilters = {
        { column = "STAGE_NAME", operator = "notEqual", value = "Closed Lost" },
        { column = "AMOUNT", operator = "greaterThan", value = "20000" },
        { column = "TYPE", operator = "equals", value = "New Customer" } },
      reportBooleanFilter = "(1 OR 3) AND 2" } },
}

local by_key, by_id, list = {}, {}, {}

for i, r in ipairs(REPORTS) do
  local extra = r[8] or {}
  local report = {
    key = r[1], id = ids.to18(r[2]), name = r[3], format = r[4], seed = r[5], size = r[6],
    detailColumns = r[7], groupingsDown = extra.groupingsDown or {},
    groupingsAcross = extra.groupingsAcross or {},
    aggregates = extra.aggregates or SUM_COUNT,
    slow = extra.slow, async = extra.async, order = i,
    reportFilters = extra.reportFilters, reportBooleanFilter = extra.reportBooleanFilter,
  }
  report.developerName = report.name:gsub("[^%w]+", "_")
  by_key[report.key] = report
  by_id[report.id] = report
  by_id[r[2]] = report
  list[i] = report
end

catalog.by_key, catalog.list = by_key, list

-- The data set POST /reports/query runs against (reports of type Opportunity).
catalog.query_dataset = { seed = 13, size = 5000 }

-- Blocks of the joined (MULTI_BLOCK) report: each block is a summary over its own filter.
catalog.joined_blocks = {
  { name = "Won", filter = { column = "STAGE_NAME", operator = "equals", value = "Closed Won" },
    detailColumns = { "OPPORTUNITY_NAME", "ACCOUNT_NAME", "AMOUNT", "CLOSE_DATE" },
    aggregates = { "s!AMOUNT", "RowCount" } },
  { name = "Open", filter = { column = "CLOSED", operator = "equals", value = "False" },
    detailColumns = { "OPPORTUNITY_NAME", "STAGE_NAME", "AMOUNT", "PROBABILITY" },
    aggregates = { "s!EXP_AMOUNT", "RowCount" } },
}
catalog.joined_grouping = "TYPE"

-- Accepts 15 or 18 character ids.
function catalog.find(id)
  return by_id[id] or (#id == 18 and by_id[id:sub(1, 15)]) or nil
end

return catalog
