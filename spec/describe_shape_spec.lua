-- Specs of prepare() (sfreports.run_options) over describe answers of the wrong shape
-- (issue 15): whatever the server sent ({}, [], a string, null, wrong-typed fields),
-- prepare returns nil and a `decode` error naming the field, never raises.
local cjson = require "cjson"
local json = require "sfreports.json"
local F = require "sfreports.filters"
local RO = require "sfreports.run_options"

local NULL = json.null

local fixtures = require "fixtures"

-- The fixture decoded (the first value only: fixtures.load also gives the text).
local function fixture(name) return (fixtures.load(name)) end
local deepcopy = fixtures.deepcopy

local TAB = fixture("describe_tabular_docderived.json")
local SUM = fixture("describe_summary_anon_v47.json")

-- Options that make prepare read every part of describe it knows.
local FULL_OPTS = {
  filters = { F.eq("AMOUNT", 1), F.eq("Closed", true), F.ge("CLOSE_DATE", F.date("2024-01-01")) },
  logic = "1 OR (2 AND 3)",
  date_filter = "THIS_FISCAL_QUARTER",
  sort = { "AMOUNT", "desc" },
  top = 3,
  columns = { "AMOUNT", "Stage" },
  groupings = { { name = "CLOSE_DATE", dateGranularity = "Month" } },
}

local function assert_decode(message, res, err)
  assert.is_nil(res)
  assert.is_table(err)
  assert.equals("decode", err.kind)
  assert.equals(message, err.message)
end

-- TAB with `path` (a list of keys) set to `value`.
local function tab_with(path, value)
  local d = deepcopy(TAB)
  local t = d
  for i = 1, #path - 1 do t = t[path[i]] end
  t[path[#path]] = value
  return d
end

describe("prepare over a describe answer of the wrong shape", function()
  it("returns a decode error for an answer that is not an object", function()
    local prefix = "the report's describe answer is "
    assert_decode(prefix .. "a string, expected an object", F.prepare({}, "<html>oops</html>"))
    assert_decode(prefix .. "null, expected an object", F.prepare({}, NULL))
    assert_decode(prefix .. "a boolean, expected an object", F.prepare({}, true))
    assert_decode(prefix .. "a number, expected an object", F.prepare({}, 42))
    assert_decode(prefix .. "a list, expected an object", F.prepare({}, cjson.decode("[1,2]")))
  end)

  it("returns a decode error for {} and [] (no reportMetadata)", function()
    local msg = "the report's describe answer is not usable: describe has no reportMetadata"
    assert_decode(msg, F.prepare({}, cjson.decode("{}")))
    assert_decode(msg, F.prepare({ filters = F.eq("A", 1) }, cjson.decode("[]")))
    assert_decode(msg, F.prepare({}, { reportMetadata = NULL }))
  end)

  it("still raises when no describe is given at all (programmer misuse)", function()
    local ok, msg = pcall(F.prepare, {}, nil)
    assert.is_false(ok)
    assert.matches("describe must be the report's decoded describe response", msg, 1, true)
  end)

  it("names the first wrong-typed field it reads", function()
    local cases = {
      { { "reportMetadata" }, "x", "describe.reportMetadata is a string, expected an object" },
      { { "reportMetadata" }, { 1, 2 }, "describe.reportMetadata is a list, expected an object" },
      { { "reportMetadata", "reportFilters" }, "x",
        "describe.reportMetadata.reportFilters is a string, expected a list" },
      { { "reportMetadata", "reportFilters" }, { a = 1 },
        "describe.reportMetadata.reportFilters is an object, expected a list" },
      { { "reportMetadata", "reportFilters" }, { 7 },
        "describe.reportMetadata.reportFilters[1] is a number, expected an object" },
      { { "reportMetadata", "reportFilters" }, { { column = 5, operator = "equals", value = "x" } },
        "describe.reportMetadata.reportFilters[1].column is a number, expected a string" },
      { { "reportMetadata", "reportBooleanFilter" }, 12,
        "describe.reportMetadata.reportBooleanFilter is a number, expected a string" },
      { { "reportMetadata", "standardDateFilter" }, "x",
        "describe.reportMetadata.standardDateFilter is a string, expected an object" },
      { { "reportMetadata", "standardDateFilter", "column" }, true,
        "describe.reportMetadata.standardDateFilter.column is a boolean, expected a string" },
      { { "reportMetadata", "sortBy" }, { "AMOUNT" },
        "describe.reportMetadata.sortBy[1] is a string, expected an object" },
      { { "reportMetadata", "historicalSnapshotDates" }, "x",
        "describe.reportMetadata.historicalSnapshotDates is a string, expected a list" },
      { { "reportMetadata", "reportFormat" }, {},
        "describe.reportMetadata.reportFormat is an object, expected a string" },
      { { "reportMetadata", "detailColumns" }, { 1 },
        "describe.reportMetadata.detailColumns[1] is a number, expected a string" },
      { { "reportTypeMetadata" }, "x", "describe.reportTypeMetadata is a string, expected an object" },
      { { "reportTypeMetadata", "categories" }, { "x" },
        "describe.reportTypeMetadata.categories[1] is a string, expected an object" },
      { { "reportTypeMetadata", "categories", 1, "columns" }, "x",
        "describe.reportTypeMetadata.categories[1].columns is a string, expected an object" },
      { { "reportTypeMetadata", "dataTypeFilterOperatorMap", "string" }, "x",
        "describe.reportTypeMetadata.dataTypeFilterOperatorMap.string is a string, expected a list" },
      { { "reportTypeMetadata", "dataTypeFilterOperatorMap", "string", 1, "name" }, 1,
        "describe.reportTypeMetadata.dataTypeFilterOperatorMap.string[1].name is a number, expected a string" },
      { { "reportTypeMetadata", "standardDateFilterDurationGroups", 1, "standardDateFilterDurations" }, "x",
        "describe.reportTypeMetadata.standardDateFilterDurationGroups[1].standardDateFilterDurations is a string, "
        .. "expected a list" },
      { { "reportTypeMetadata", "dateGranularityInfos" }, { { value = 3 } },
        "describe.reportTypeMetadata.dateGranularityInfos[1].value is a number, expected a string" },
      { { "reportTypeMetadata", "isHistorical" }, "true",
        "describe.reportTypeMetadata.isHistorical is a string, expected a boolean" },
      { { "reportExtendedMetadata" }, 5, "describe.reportExtendedMetadata is a number, expected an object" },
      { { "reportExtendedMetadata", "detailColumnInfo", "AMOUNT" }, "x",
        "describe.reportExtendedMetadata.detailColumnInfo.AMOUNT is a string, expected an object" },
      { { "reportExtendedMetadata", "detailColumnInfo", "AMOUNT", "dataType" }, 5,
        "describe.reportExtendedMetadata.detailColumnInfo.AMOUNT.dataType is a number, expected a string" },
      { { "reportExtendedMetadata", "detailColumnInfo", "AMOUNT", "filterable" }, "yes",
        "describe.reportExtendedMetadata.detailColumnInfo.AMOUNT.filterable is a string, expected a boolean" },
      { { "reportExtendedMetadata", "detailColumnInfo", "AMOUNT", "filterValues" }, { "x" },
        "describe.reportExtendedMetadata.detailColumnInfo.AMOUNT.filterValues[1] is a string, expected an object" },
      { { "reportExtendedMetadata", "detailColumnInfo", "AMOUNT", "isLookup" }, 0,
        "describe.reportExtendedMetadata.detailColumnInfo.AMOUNT.isLookup is a number, expected a boolean" },
      { { "reportExtendedMetadata", "groupingColumnInfo" }, "x",
        "describe.reportExtendedMetadata.groupingColumnInfo is a string, expected an object" },
    }
    for _, case in ipairs(cases) do
      local d = tab_with(case[1], case[2])
      assert_decode("the report's describe answer is not usable: " .. case[3], F.prepare({}, d))
      -- the same answer fails the same way with every option set
      assert_decode("the report's describe answer is not usable: " .. case[3], RO.prepare(FULL_OPTS, d))
    end
  end)

  it("bounds and cleans a server's key shown in the message", function()
    local long = string.rep("K", 100) .. "\27[2J"
    local d = tab_with({ "reportExtendedMetadata", "detailColumnInfo", long }, "x")
    local res, err = F.prepare({}, d)
    assert.is_nil(res)
    assert.equals("describe.reportExtendedMetadata.detailColumnInfo." .. string.rep("K", 40) .. "... is a string, "
      .. "expected an object", err.message:match("usable: (.*)$"))
  end)

  it("accepts absent and null fields, and both fixtures as they are", function()
    assert.is_table(F.prepare({}, { reportMetadata = {} }))
    assert.is_table(F.prepare({}, { reportMetadata = { reportFilters = NULL, sortBy = NULL },
      reportTypeMetadata = NULL, reportExtendedMetadata = NULL }))
    assert.is_table(F.prepare(FULL_OPTS, TAB))
    assert.is_table(F.prepare({ sort = "column" }, SUM))
  end)

  -- Every node of the fixture, in turn, replaced by values of other types: prepare must
  -- return (a table, or nil and an invalid/decode error), never raise.
  it("never raises, whatever node of the answer has the wrong type", function()
    local replacements = { "x", true, NULL, { "y" }, { { z = 1 } } }
    local opts_sets = {
      FULL_OPTS,
      { replace_filters = { "STAGE_NAME" }, date_filter = { from = "2024-01-01" }, top = 2 },
      { filters = F.eq("Account Name", "Acme, Inc."), replace_filters = true },
    }
    local calls = 0
    -- walks the fixture, mutating one node at a time in place; prepare sees a fresh
    -- top-level table each time (its caches are per describe table)
    local function visit(parent, key, depth)
      local original = parent[key]
      for _, r in ipairs(replacements) do
        parent[key] = type(r) == "table" and deepcopy(r) or r
        for _, opts in ipairs(opts_sets) do
          local fresh = {}
          for k, v in pairs(TAB) do fresh[k] = v end
          local ok, res, err = pcall(RO.prepare, opts, fresh)
          calls = calls + 1
          assert.is_true(ok, "prepare raised: " .. tostring(res))
          if res == nil then
            assert.is_true(err.kind == "decode" or err.kind == "invalid", tostring(err))
          end
        end
      end
      parent[key] = original
      if type(original) == "table" and depth < 5 then
        local keys = {}
        for k in pairs(original) do keys[#keys + 1] = k end
        -- the first entries of long lists and maps are enough
        table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
        for i = 1, math.min(#keys, 3) do visit(original, keys[i], depth + 1) end
      end
    end
    for _, top in ipairs({ "reportMetadata", "reportTypeMetadata", "reportExtendedMetadata" }) do
      visit(TAB, top, 1)
    end
    assert.is_true(calls > 300, calls)
  end)
end)
