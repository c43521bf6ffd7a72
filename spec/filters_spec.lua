-- Specs of sfreports.filters: builder output (exact JSON), logic parsing and merging, and
-- prepare() against the describe fixtures in spec/fixtures/describe_*.json:
--   describe_tabular_docderived.json  doc-derived TABULAR describe (reportforce sample_metadata.json)
--   describe_summary_anon_v47.json    anonymized v47 SUMMARY describe (reportforce summary_metadata.json);
--                                     its strings are placeholders ("column", "value", "name"), which
--                                     the specs below use as they are.
local cjson = require "cjson"

-- TODO(lead): remove this stub once lua/sfreports/errors.lua (and the C core it needs) exists.
-- It is installed only when the real module cannot be loaded.
if not pcall(require, "sfreports.errors") then
  package.loaded["sfreports.errors"] = nil
  package.preload["sfreports.errors"] = function()
    local mt = { __tostring = function(e) return e.kind .. ": " .. e.message end }
    return {
      new = function(kind, message, fields)
        local e = { kind = kind, message = message }
        for k, v in pairs(fields or {}) do e[k] = v end
        return setmetatable(e, mt)
      end,
    }
  end
end

local json = require "sfreports.json"
local F = require "sfreports.filters"

local fixtures = require "fixtures"

-- The fixture decoded (the first value only: fixtures.load also gives the text).
local function fixture(name) return (fixtures.load(name)) end
local deepcopy = fixtures.deepcopy

local enc = json.encode

local function build_json(expr)
  return enc(F.build(expr))
end

-- Asserts that prepare/merge failed with an `invalid` error carrying exactly `message`.
local function assert_invalid(message, res, err)
  assert.is_nil(res)
  assert.is_table(err)
  assert.equals("invalid", err.kind)
  assert.equals(message, err.message)
end

local unpack = table.unpack or unpack -- luacheck: ignore 143

-- Asserts that fn(...) raises a string error containing `text`.
local function assert_raises(text, fn, ...)
  local args = { n = select("#", ...), ... }
  local ok, msg = pcall(function() return fn(unpack(args, 1, args.n)) end)
  assert.is_false(ok)
  assert.is_string(msg)
  assert.truthy(msg:find(text, 1, true), "expected '" .. text .. "' in: " .. msg)
end

local TAB = fixture("describe_tabular_docderived.json")
local SUM = fixture("describe_summary_anon_v47.json")

-- The doc-derived report with saved filters and saved logic, as Salesforce would describe it.
local function tab_with_saved(logic)
  local d = deepcopy(TAB)
  d.reportMetadata.reportFilters = {
    { column = "STAGE_NAME", filterType = "fieldValue", isRunPageEditable = true, operator = "equals",
      value = "Prospecting" },
    { column = "TYPE", filterType = "fieldValue", isRunPageEditable = true, operator = "equals",
      value = "New Business" },
    { column = "AMOUNT", filterType = "fieldValue", isRunPageEditable = true, operator = "greaterThan",
      value = "1000" },
  }
  d.reportMetadata.reportBooleanFilter = logic == nil and cjson.null or logic
  return d
end

local SAVED_TAB_FILTERS = '{"column":"STAGE_NAME","filterType":"fieldValue","isRunPageEditable":true,'
  .. '"operator":"equals","value":"Prospecting"},'
  .. '{"column":"TYPE","filterType":"fieldValue","isRunPageEditable":true,"operator":"equals",'
  .. '"value":"New Business"},'
  .. '{"column":"AMOUNT","filterType":"fieldValue","isRunPageEditable":true,"operator":"greaterThan",'
  .. '"value":"1000"}'

local SAVED_SUM_FILTER = '{"column":"column","filterType":"fieldValue","isRunPageEditable":true,'
  .. '"operator":"equals","value":"value"}'
local SAVED_SUM_FILTERS = SAVED_SUM_FILTER .. "," .. SAVED_SUM_FILTER .. "," .. SAVED_SUM_FILTER
local SAVED_SUM_DATE = '"standardDateFilter":{"column":"column","durationValue":"TODAY",'
  .. '"endDate":"2020-02-14","startDate":"2020-02-14"}'
local SAVED_TAB_DATE = '"standardDateFilter":{"column":"CLOSE_DATE","durationValue":"THIS_FISCAL_QUARTER",'
  .. '"endDate":"2016-12-31","startDate":"2016-10-01"}'

describe("sfreports.filters", function()

  describe("builders", function()
    it("have one constructor per API operator", function()
      local cases = {
        { "eq", "equals" }, { "ne", "notEqual" }, { "lt", "lessThan" }, { "gt", "greaterThan" },
        { "le", "lessOrEqual" }, { "ge", "greaterOrEqual" }, { "contains", "contains" },
        { "not_contains", "notContain" }, { "starts_with", "startsWith" }, { "includes", "includes" },
        { "excludes", "excludes" },
      }
      for _, case in ipairs(cases) do
        assert.equals('{"reportFilters":[{"column":"COL","operator":"' .. case[2] .. '","value":"v"}]}',
          build_json(F[case[1]]("COL", "v")))
      end
    end)

    it("build a filter from an API operator name", function()
      assert.equals('{"reportFilters":[{"column":"ADDR","operator":"within","value":"5"}]}',
        build_json(F.filter("ADDR", "within", 5)))
    end)

    it("format numbers and booleans as strings", function()
      assert.equals('{"reportFilters":[{"column":"A","operator":"greaterThan","value":"100000"},'
        .. '{"column":"B","operator":"lessThan","value":"-2.5"},'
        .. '{"column":"C","operator":"equals","value":"0.1"},'
        .. '{"column":"D","operator":"equals","value":"True"},'
        .. '{"column":"E","operator":"equals","value":"False"}]}',
        build_json{ F.gt("A", 100000), F.lt("B", -2.5), F.eq("C", 0.1), F.eq("D", true), F.eq("E", false) })
    end)

    it("join a list with commas, quoting the values that hold a comma", function()
      assert.equals('{"reportFilters":[{"column":"ACCOUNT_NAME","operator":"equals",'
        .. '"value":"Acme,\\"Globex, Inc.\\",42,\\"say \\"\\"hi\\"\\", twice\\""}]}',
        build_json(F.eq("ACCOUNT_NAME", { "Acme", "Globex, Inc.", 42, 'say "hi", twice' })))
    end)

    it("quote a single value that holds a comma, so that Salesforce keeps it whole", function()
      assert.equals('{"reportFilters":[{"column":"STAGE_NAME","operator":"notEqual",'
        .. '"value":"\\"Closed Won,Closed Lost\\""}]}',
        build_json(F.ne("STAGE_NAME", "Closed Won,Closed Lost")))
      assert.equals('{"reportFilters":[{"column":"CITY","operator":"notEqual","value":""}]}',
        build_json(F.ne("CITY", "")))
    end)

    it("format Lua dates and keep ISO strings", function()
      local noon = os.time{ year = 2024, month = 1, day = 31, hour = 12 }
      assert.equals('{"reportFilters":[{"column":"D1","operator":"equals","value":"2024-01-31"},'
        .. '{"column":"D2","operator":"equals","value":"2024-01-31"},'
        .. '{"column":"D3","operator":"equals","value":"2024-01-31T12:00:00Z"},'
        .. '{"column":"D4","operator":"equals","value":"2024-02-29"},'
        .. '{"column":"D5","operator":"equals","value":"2024-01-31T10:00:00Z"}]}',
        build_json{
          F.eq("D1", { year = 2024, month = 1, day = 31 }),
          F.eq("D2", F.date(noon)),
          F.eq("D3", F.datetime(1706702400)),
          F.eq("D4", "2024-02-29"),
          F.eq("D5", "2024-01-31T10:00:00Z"),
        })
      -- a date table with a time is local time, as for os.time
      local t = { year = 2024, month = 1, day = 31, hour = 9, min = 30, sec = 0 }
      assert.equals('{"reportFilters":[{"column":"D","operator":"lessThan","value":"'
        .. os.date("!%Y-%m-%dT%H:%M:%SZ", os.time(t)) .. '"}]}', build_json(F.lt("D", t)))
      -- without describe, a plain number is a number
      assert.equals('{"reportFilters":[{"column":"N","operator":"equals","value":"1706702400"}]}',
        build_json(F.eq("N", 1706702400)))
    end)

    it("return nil logic when everything is ANDed", function()
      local b = F.build(F.all{ F.eq("A", 1), F.eq("B", 2), F.all{ F.eq("C", 3) } })
      assert.is_nil(b.reportBooleanFilter)
      assert.equals(3, #b.reportFilters)
      assert.equals('{"reportFilters":[{"column":"A","operator":"equals","value":"1"}]}',
        build_json(F.eq("A", 1)))
      -- a plain list means AND
      assert.is_nil(F.build{ F.eq("A", 1), F.eq("B", 2) }.reportBooleanFilter)
    end)

    it("number filters depth-first with minimal parentheses", function()
      local a, b, c, d, e = F.eq("A", 1), F.eq("B", 2), F.eq("C", 3), F.eq("D", 4), F.eq("E", 5)
      assert.equals("1 OR 2", F.build(F.any{ a, b }).reportBooleanFilter)
      assert.equals("(1 OR 2) AND 3", F.build{ F.any{ a, b }, c }.reportBooleanFilter)
      assert.equals("1 AND (2 OR 3)", F.build(F.all{ a, F.any{ b, c } }).reportBooleanFilter)
      assert.equals("(1 AND 2) OR (3 AND (4 OR 5))",
        F.build(F.any{ F.all{ a, b }, F.all{ c, F.any{ d, e } } }).reportBooleanFilter)
      -- nested groups of the same kind are flattened
      assert.equals("1 OR 2 OR 3", F.build(F.any{ a, F.any{ b, F.any{ c } } }).reportBooleanFilter)
      assert.equals("1 AND 2 AND (3 OR 4)", F.build(F.all{ F.all{ a, b }, F.any{ c, d } }).reportBooleanFilter)
    end)

    it("emit NOT (support in the API is unconfirmed)", function()
      local a, b, c = F.eq("A", 1), F.eq("B", 2), F.eq("C", 3)
      assert.equals("NOT 1", F.build(F.not_(a)).reportBooleanFilter)
      assert.equals("NOT (1 OR 2)", F.build(F.not_(F.any{ a, b })).reportBooleanFilter)
      assert.equals("1 AND NOT (2 AND 3)", F.build{ a, F.not_(F.all{ b, c }) }.reportBooleanFilter)
      assert.equals("1 OR NOT 2", F.build(F.any{ a, F.not_(b) }).reportBooleanFilter)
      -- double negation cancels
      assert.is_nil(F.build(F.not_(F.not_(a))).reportBooleanFilter)
    end)

    it("accept API-shaped filter tables", function()
      assert.equals('{"reportBooleanFilter":"1 OR 2","reportFilters":['
        .. '{"column":"COMPANY","operator":"contains","value":"\\",Inc.\\""},'
        .. '{"column":"A","operator":"equals","value":"1"}]}',
        build_json(F.any{ { column = "COMPANY", operator = "contains", value = ",Inc." }, F.eq("A", 1) }))
    end)

    it("build an empty filter list from all{}", function()
      assert.equals('{"reportFilters":[]}', build_json(F.all{}))
      assert.equals('{"reportFilters":[{"column":"A","operator":"equals","value":"1"}]}',
        build_json(F.all{ F.all{}, F.eq("A", 1) }))
    end)

    it("raise on programmer misuse", function()
      assert_raises("sfreports.filters.eq: column must be a non-empty string, got nil", F.eq)
      assert_raises("sfreports.filters.ne: column must be a non-empty string", F.ne, "", "x")
      assert_raises("sfreports.filters.gt: value is missing", F.gt, "A")
      assert_raises("sfreports.filters.eq: takes (column, value)", F.eq, "A", 1, 2)
      assert_raises("cannot use a function as a filter value", F.eq, "A", print)
      assert_raises("cannot use a JSON null as a filter value", F.eq, "A", cjson.null)
      assert_raises("a list of values must not be empty", F.eq, "A", {})
      assert_raises("cannot use a table inside a list of values", F.eq, "A", { { 1 } })
      assert_raises("cannot use NaN as a filter value", F.eq, "A", 0 / 0)
      assert_raises("cannot use an infinite number as a filter value", F.lt, "A", math.huge)
      assert_raises("has a hole at index 2", F.eq, "A", { 1, nil, 3 })
      assert_raises("date table field month must be an integer from 1 to 12", F.eq, "A",
        { year = 2024, month = 13, day = 1 })
      assert_raises("sfreports.filters.filter: unknown operator 'between'", F.filter, "A", "between", 1)
      assert_raises("sfreports.filters.all: expects a list of filter expressions", F.all, 3)
      assert_raises("sfreports.filters.all: expected a filter expression", F.all, { 1 })
      assert_raises("sfreports.filters.any: needs at least one filter expression", F.any, {})
      assert_raises("sfreports.filters.not_: expected a filter expression", F.not_, nil)
      assert_raises("sfreports.filters.date: expected an ISO date string", F.date, "31/01/2024")
      assert_raises("sfreports.filters.build: an empty all{} inside any()", F.build,
        F.any{ F.all{}, F.eq("A", 1) })
      assert_raises("sfreports.filters.build: an empty all{} inside not_()", F.build, F.not_(F.all{}))
      assert_raises("sfreports.filters.build: expected a filter expression or a list of them", F.build, "A = 1")
    end)

    it("position misuse errors at the caller", function()
      local ok, msg = pcall(function()
        local f = F.eq(nil, 1) -- not a tail call, so this frame is on the stack
        return f
      end)
      assert.is_false(ok)
      assert.truthy(msg:find("filters_spec.lua:%d+: sfreports.filters.eq"), msg)
    end)
  end)

  describe("normalize_logic", function()
    it("returns the canonical form", function()
      assert.equals("(1 OR 4) AND 2 AND 3", F.normalize_logic("(1OR4)AND2AND3", 4))
      assert.equals("1 AND NOT (2 OR 3)", F.normalize_logic(" 1 and not ( 2 or 3 ) ", 3))
      assert.equals("1 AND 2 AND 3", F.normalize_logic("((1 AND 2)) AND 3", 3))
      assert.equals("1", F.normalize_logic("NOT NOT 1", 1))
    end)

    it("refuses logic that references a missing filter or leaves one unreferenced", function()
      assert_invalid("the filter logic '1 AND 4' references filter 4, but there are only 3 filters",
        F.normalize_logic("1 AND 4", 3))
      assert_invalid("the filter logic '0 OR 1' references filter 0, but there is only 1 filter",
        F.normalize_logic("0 OR 1", 1))
      assert_invalid("filter 2 is defined but not referenced in the filter logic '1 AND 3'",
        F.normalize_logic("1 AND 3", 3))
    end)

    it("refuses malformed logic", function()
      assert_invalid("the filter logic '1 AND 2 OR 3' is malformed: it mixes AND and OR without parentheses "
        .. "(position 9)", F.normalize_logic("1 AND 2 OR 3", 3))
      assert_invalid("the filter logic '(1 AND 2' is malformed: expected ')' at the end",
        F.normalize_logic("(1 AND 2", 2))
      assert_invalid("the filter logic '1 XOR 2' is malformed: unexpected 'XOR' at position 3",
        F.normalize_logic("1 XOR 2", 2))
      assert_invalid("the filter logic '1 2' is malformed: unexpected '2' at position 3",
        F.normalize_logic("1 2", 2))
      assert_invalid("the filter logic '1 AND' is malformed: expected a filter number, NOT or '(' at the end",
        F.normalize_logic("1 AND", 1))
      assert_invalid("the filter logic '1 & 2' is malformed: unexpected '&' at position 3",
        F.normalize_logic("1 & 2", 2))
      assert_invalid("the filter logic '  ' is malformed: it is empty", F.normalize_logic("  ", 1))
    end)
  end)

  describe("merge", function()
    local function f(col, v) return { column = col, operator = "equals", value = v } end

    it("wraps the saved logic and the new filters: (1 OR 2) AND (3 AND 4)", function()
      local list, logic = F.merge({ f("A", "1"), f("B", "2") }, "1 OR 2", { f("C", "3"), f("D", "4") })
      assert.equals("(1 OR 2) AND (3 AND 4)", logic)
      assert.equals('[{"column":"A","operator":"equals","value":"1"},{"column":"B","operator":"equals","value":"2"},'
        .. '{"column":"C","operator":"equals","value":"3"},{"column":"D","operator":"equals","value":"4"}]',
        enc(list))
    end)

    it("renumbers the new logic after the saved filters", function()
      local _, logic = F.merge({ f("A", "1"), f("B", "2") }, nil, { f("C", "3"), f("D", "4") }, "1 OR 2")
      assert.equals("(1 AND 2) AND (3 OR 4)", logic)
      _, logic = F.merge({ f("A", "1"), f("B", "2"), f("C", "3") }, "(1 OR 2) AND 3", { f("D", "4") }, nil)
      assert.equals("((1 OR 2) AND 3) AND 4", logic)
      _, logic = F.merge({ f("A", "1") }, "NOT 1", { f("B", "2"), f("C", "3") }, "NOT (1 OR 2)")
      assert.equals("NOT 1 AND NOT (2 OR 3)", logic)
    end)

    it("sends null logic when everything is ANDed", function()
      local list, logic = F.merge({ f("A", "1"), f("B", "2") }, cjson.null, { f("C", "3") }, nil)
      assert.equals(json.null, logic)
      assert.equals(3, #list)
      list, logic = F.merge({ f("A", "1") }, "1", { f("B", "2") }, "1")
      assert.equals(json.null, logic)
      assert.equals(2, #list)
      list, logic = F.merge(nil, nil, {}, nil)
      assert.equals("[]", enc(list))
      assert.equals(json.null, logic)
    end)

    it("keeps one side alone in canonical form", function()
      local _, logic = F.merge({}, nil, { f("A", "1"), f("B", "2") }, "1 or 2")
      assert.equals("1 OR 2", logic)
      _, logic = F.merge({ f("A", "1"), f("B", "2") }, "(1OR2)", {}, nil)
      assert.equals("1 OR 2", logic)
    end)

    it("keeps saved logic it cannot parse verbatim, wrapped", function()
      local _, logic = F.merge({ f("A", "1"), f("B", "2"), f("C", "3") }, "1 AND 2 OR 3", { f("D", "4") }, nil)
      assert.equals("(1 AND 2 OR 3) AND 4", logic)
    end)

    it("accepts builder filters in the new list", function()
      local list, logic = F.merge({ f("A", "1") }, nil, { F.gt("Id", "001xx"), F.eq("N", { 1, 2 }) }, "1 OR 2")
      assert.equals("1 AND (2 OR 3)", logic)
      assert.equals('[{"column":"A","operator":"equals","value":"1"},'
        .. '{"column":"Id","operator":"greaterThan","value":"001xx"},{"column":"N","operator":"equals","value":"1,2"}]',
        enc(list))
    end)

    it("refuses logic that does not match the filters", function()
      assert_invalid("the report's saved filter logic '1 OR 3' references filter 3, but there are only 2 filters",
        F.merge({ f("A", "1"), f("B", "2") }, "1 OR 3", { f("C", "3") }, nil))
      assert_invalid("filter 2 is defined but not referenced in the filter logic '1'",
        F.merge({ f("A", "1") }, nil, { f("B", "2"), f("C", "3") }, "1"))
      assert_invalid("filter logic '1 OR 2' was given without filters",
        F.merge({ f("A", "1") }, nil, {}, "1 OR 2"))
    end)

    it("refuses more than 20 filters in all", function()
      local saved = {}
      for i = 1, 20 do saved[i] = f("A", tostring(i)) end
      assert_invalid("21 filters (20 existing + 1 new); Salesforce accepts at most 20 per run",
        F.merge(saved, nil, { f("Id", "001") }, nil))
    end)

    it("raises on misuse", function()
      assert_raises("sfreports.filters.merge: metadata_filters must be a list of filters", F.merge, "x", nil, {})
      assert_raises("sfreports.filters.merge: new_logic must be a string", F.merge, {}, nil, {}, 3)
      assert_raises("new_filters_list holds single filters only", F.merge, {}, nil, { F.all{ F.eq("A", 1) } })
    end)
  end)

  describe("needs_describe", function()
    it("is true when an option that changes the metadata is present", function()
      assert.is_false(F.needs_describe(nil))
      assert.is_false(F.needs_describe{})
      assert.is_false(F.needs_describe{ include_details = true, replace_filters = false })
      for _, name in ipairs{ "filters", "logic", "date_filter", "sort", "top", "columns", "groupings" } do
        assert.is_true(F.needs_describe{ [name] = {} }, name)
      end
      assert.is_true(F.needs_describe{ replace_filters = true })
      assert.is_true(F.needs_describe{ filters = F.eq("A", 1) })
    end)
  end)

  describe("prepare with the doc-derived tabular describe", function()
    it("builds the metadata to send", function()
      local md, err = F.prepare({
        filters = F.all{
          F.eq("Stage", { "Closed Won", "Closed Lost" }),
          F.any{ F.gt("AMOUNT", 1000.5), F.eq("Type", "New Business") },
        },
        date_filter = "LAST_FISCAL_YEAR",
        sort = { "Amount", "desc" },
        top = 10,
        columns = { "Opportunity Name", "AMOUNT", "Close Date" },
        include_details = true, -- belongs to the client: ignored
      }, TAB)
      assert.is_nil(err)
      assert.equals('{"detailColumns":["OPPORTUNITY_NAME","AMOUNT","CLOSE_DATE"],'
        .. '"historicalSnapshotDates":[],"reportBooleanFilter":"1 AND (2 OR 3)",'
        .. '"reportFilters":[{"column":"STAGE_NAME","operator":"equals","value":"Closed Won,Closed Lost"},'
        .. '{"column":"AMOUNT","operator":"greaterThan","value":"1000.5"},'
        .. '{"column":"TYPE","operator":"equals","value":"New Business"}],'
        .. '"sortBy":[{"sortColumn":"AMOUNT","sortOrder":"desc"}],'
        .. '"standardDateFilter":{"column":"CLOSE_DATE","durationValue":"LAST_FISCAL_YEAR","endDate":null,'
        .. '"startDate":null},"topRows":{"direction":"Asc","rowLimit":10}}', enc(md))
    end)

    it("echoes the saved date filter and sends null logic for a plain AND", function()
      local md = assert(F.prepare({ filters = { F.eq("CLOSED", false), F.ge("Probability (%)", 50) } }, TAB))
      assert.equals('{"historicalSnapshotDates":[],"reportBooleanFilter":null,"reportFilters":['
        .. '{"column":"CLOSED","operator":"equals","value":"False"},'
        .. '{"column":"PROBABILITY","operator":"greaterOrEqual","value":"50"}],' .. SAVED_TAB_DATE .. '}',
        enc(md))
    end)

    it("resolves columns by API name, label, or either in another case", function()
      local function column(name)
        local md = assert(F.prepare({ filters = F.eq(name, "TODAY") }, TAB))
        return md.reportFilters[1].column
      end
      assert.equals("STAGE_NAME", column("STAGE_NAME"))
      assert.equals("STAGE_NAME", column("Stage"))
      assert.equals("STAGE_NAME", column("stage_name"))
      assert.equals("STAGE_NAME", column("STAGE"))
      assert.equals("CLOSE_DATE2", column("Close Date (2)"))
      assert.equals("CON.EMAIL", column("Contact: Email"))
      assert.equals("CLOSE_DATE", (F.resolve_column(TAB, "close date")))
    end)

    it("formats values for the column's type", function()
      local noon = os.time{ year = 2024, month = 3, day = 1, hour = 12 }
      local md = assert(F.prepare({ filters = {
        F.eq("CLOSE_DATE", noon),
        F.lt("CREATED_DATE", 1706702400),
        F.gt("CREATED_DATE", { year = 2024, month = 1, day = 2 }),
        F.eq("CLOSE_DATE", F.datetime(1706702400)),
        F.ge("LAST_STAGE_CHANGE_DATE", "LAST_N_DAYS:30"),
        F.le("CLOSE_DATE", "THIS_MONTH"),
        F.eq("AGE", 12),
        F.eq("WON", true),
        F.ne("CLOSE_DATE", ""),
      } }, TAB))
      local values = {}
      for i, f in ipairs(md.reportFilters) do values[i] = f.value end
      -- an os.time value on a date column is the local calendar date of that instant
      local local_day = os.date("%Y-%m-%d", 1706702400)
      assert.same({ "2024-03-01", "2024-01-31T12:00:00Z", "2024-01-02", local_day, "LAST_N_DAYS:30",
        "THIS_MONTH", "12", "True", "" }, values)
    end)

    it("refuses a date value that is neither ISO nor a literal", function()
      assert_invalid("value '31/01/2024' for column 'CLOSE_DATE' (Close Date) is not an ISO date (YYYY-MM-DD) "
        .. "or a date literal such as THIS_MONTH",
        F.prepare({ filters = F.eq("Close Date", { "2024-01-30", "31/01/2024" }) }, TAB))
    end)

    it("merges with the saved filters and logic", function()
      local md = assert(F.prepare({ filters = F.any{ F.eq("LEAD_SOURCE", "Web"), F.eq("LEAD_SOURCE", "Phone") } },
        tab_with_saved("(1 OR 2) AND 3")))
      assert.equals("((1 OR 2) AND 3) AND (4 OR 5)", md.reportBooleanFilter)
      assert.equals('{"historicalSnapshotDates":[],"reportBooleanFilter":"((1 OR 2) AND 3) AND (4 OR 5)",'
        .. '"reportFilters":[' .. SAVED_TAB_FILTERS .. ','
        .. '{"column":"LEAD_SOURCE","operator":"equals","value":"Web"},'
        .. '{"column":"LEAD_SOURCE","operator":"equals","value":"Phone"}],' .. SAVED_TAB_DATE .. '}', enc(md))

      -- saved filters without logic are an implicit AND
      md = assert(F.prepare({ filters = F.any{ F.eq("LEAD_SOURCE", "Web"), F.eq("LEAD_SOURCE", "Phone") } },
        tab_with_saved(nil)))
      assert.equals("(1 AND 2 AND 3) AND (4 OR 5)", md.reportBooleanFilter)
      md = assert(F.prepare({ filters = F.eq("LEAD_SOURCE", "Web") }, tab_with_saved(nil)))
      assert.equals(json.null, md.reportBooleanFilter)
      assert.equals(4, #md.reportFilters)

      -- options without filters still send the saved filters and logic
      md = assert(F.prepare({ sort = "AMOUNT" }, tab_with_saved("1 OR (2 AND 3)")))
      assert.equals("1 OR (2 AND 3)", md.reportBooleanFilter)
      assert.equals('[' .. SAVED_TAB_FILTERS .. ']', enc(md.reportFilters))
    end)

    it("takes explicit logic over a plain list of filters", function()
      local md = assert(F.prepare({ filters = { F.eq("TYPE", "New Business"), F.gt("AMOUNT", 10), F.lt("AGE", 30) },
        logic = "1 OR (2 AND 3)" }, tab_with_saved("1 OR 2 OR 3")))
      assert.equals("(1 OR 2 OR 3) AND (4 OR (5 AND 6))", md.reportBooleanFilter)
      assert.equals(6, #md.reportFilters)
      assert_invalid("filter 3 is defined but not referenced in the filter logic '1 OR 2'",
        F.prepare({ filters = { F.eq("TYPE", "x"), F.gt("AMOUNT", 10), F.lt("AGE", 30) }, logic = "1 OR 2" }, TAB))
      assert_invalid("the filter logic '1 OR 3' references filter 3, but there are only 2 filters",
        F.prepare({ filters = { F.eq("TYPE", "x"), F.gt("AMOUNT", 10) }, logic = "1 OR 3" }, TAB))
    end)

    it("replaces the saved filters when asked", function()
      local md = assert(F.prepare({ filters = F.eq("TYPE", "x"), replace_filters = true },
        tab_with_saved("(1 OR 2) AND 3")))
      assert.equals('[{"column":"TYPE","operator":"equals","value":"x"}]', enc(md.reportFilters))
      assert.equals(json.null, md.reportBooleanFilter)
    end)

    it("replaces the saved filters on named columns and renumbers the saved logic", function()
      local md = assert(F.prepare({ filters = F.eq("STAGE_NAME", "Closed Won"), replace_filters = { "Stage" } },
        tab_with_saved("(1 OR 2) AND 3")))
      assert.equals('[' .. SAVED_TAB_FILTERS:gsub('^.-},', '') .. ','
        .. '{"column":"STAGE_NAME","operator":"equals","value":"Closed Won"}]', enc(md.reportFilters))
      assert.equals(json.null, md.reportBooleanFilter) -- "2 AND 3" renumbered to "1 AND 2", then AND 3
      md = assert(F.prepare({ filters = F.eq("TYPE", "x"), replace_filters = { "TYPE" } },
        tab_with_saved("1 OR (2 AND 3)")))
      assert.equals("(1 OR 2) AND 3", md.reportBooleanFilter)
      md = assert(F.prepare({ replace_filters = { "AMOUNT" } }, tab_with_saved("NOT 3 AND (1 OR 2)")))
      assert.equals("1 OR 2", md.reportBooleanFilter)
      assert_invalid("replace_filters names column 'LEAD_SOURCE', but the report has no saved filter on it",
        F.prepare({ replace_filters = { "LEAD_SOURCE" } }, tab_with_saved(nil)))
      assert_invalid("unknown column 'STAGES' in replace_filters; did you mean 'STAGE_NAME' (Stage)?",
        F.prepare({ replace_filters = { "STAGES" } }, tab_with_saved(nil)))
    end)

    it("refuses an unknown column and suggests the closest names", function()
      assert_invalid("unknown column 'Stag' in filters; did you mean 'STAGE_NAME' (Stage), "
        .. "'LAST_STAGE_CHANGE_DATE' (Last Stage Change Date) or 'STAGE_DURATION' (Stage Duration)?",
        F.prepare({ filters = F.eq("Stag", "x") }, TAB))
      assert_invalid("unknown column 'AMOUTN' in filters; did you mean 'AMOUNT' (Amount)?",
        F.prepare({ filters = F.eq("AMOUTN", 1) }, TAB))
      assert_invalid("unknown column 'Zebra' in filters (not a column of this report type)",
        F.prepare({ filters = F.eq("Zebra", 1) }, TAB))
      local md, err = F.prepare({ filters = F.eq("AMOUTN", 1) }, TAB)
      assert.is_nil(md)
      if err.suggestions then assert.same({ "AMOUNT" }, err.suggestions) end
    end)

    it("refuses an ambiguous label", function()
      local d = deepcopy(TAB)
      d.reportTypeMetadata.categories[1].columns.CLOSE_DATE2.label = "Close Date"
      assert_invalid("column 'Close Date' in filters is ambiguous: it is the label of 'CLOSE_DATE' (Close Date) or "
        .. "'CLOSE_DATE2' (Close Date); use the API name", F.prepare({ filters = F.eq("Close Date", "TODAY") }, d))
    end)

    it("refuses an operator that the column's data type does not allow", function()
      assert_invalid("operator 'lessThan' is not allowed on column 'CLOSED' (Closed) of type boolean; "
        .. "allowed: equals, notEqual", F.prepare({ filters = F.lt("CLOSED", true) }, TAB))
      assert_invalid("operator 'includes' is not allowed on column 'STAGE_NAME' (Stage) of type picklist; "
        .. "allowed: equals, notEqual, lessThan, greaterThan, lessOrEqual, greaterOrEqual, contains, notContain, "
        .. "startsWith", F.prepare({ filters = F.includes("Stage", { "a", "b" }) }, TAB))
      assert_invalid("operator 'contains' is not allowed on column 'OPPORTUNITY_ID' (Opportunity ID) of type id; "
        .. "allowed: equals, notEqual, startsWith", F.prepare({ filters = F.contains("OPPORTUNITY_ID", "006") }, TAB))
      -- a type missing from describe's map falls back to the documented operator list
      local d = deepcopy(TAB)
      d.reportTypeMetadata.dataTypeFilterOperatorMap.boolean = nil
      assert_invalid("operator 'startsWith' is not allowed on column 'WON' (Won) of type boolean; "
        .. "allowed: equals, notEqual", F.prepare({ filters = F.starts_with("WON", "T") }, d))
    end)

    it("refuses a column that is not filterable", function()
      local d = deepcopy(TAB)
      d.reportTypeMetadata.categories[1].columns.DESCRIPTION.filterable = false
      assert_invalid("column 'DESCRIPTION' (Description) is not filterable",
        F.prepare({ filters = F.contains("Description", "renewal") }, d))
    end)

    it("refuses more than 20 filters", function()
      local list = {}
      for i = 1, 21 do list[i] = F.eq("AGE", i) end
      assert_invalid("21 filters (0 saved + 21 new); Salesforce accepts at most 20 per run",
        F.prepare({ filters = list }, TAB))
      list[21], list[20], list[19], list[18] = nil, nil, nil, nil
      assert.is_table((F.prepare({ filters = list }, tab_with_saved(nil))))
      list[18] = F.eq("AGE", 18)
      assert_invalid("21 filters (3 saved + 18 new); Salesforce accepts at most 20 per run",
        F.prepare({ filters = list }, tab_with_saved(nil)))
    end)

    it("sets a relative or custom standard date filter", function()
      local function sdf(df)
        local md, err = F.prepare({ date_filter = df }, TAB)
        assert.is_nil(err)
        return enc(md.standardDateFilter)
      end
      assert.equals('{"column":"CLOSE_DATE","durationValue":"THIS_FISCAL_YEAR","endDate":null,"startDate":null}',
        sdf("this_fiscal_year"))
      assert.equals('{"column":"CREATED_DATE","durationValue":"LAST_FISCAL_YEAR","endDate":null,"startDate":null}',
        sdf{ column = "Created Date", duration = "LAST_FISCAL_YEAR" })
      assert.equals('{"column":"CLOSE_DATE","durationValue":"CUSTOM","endDate":"2024-03-31","startDate":"2024-01-01"}',
        sdf{ from = { year = 2024, month = 1, day = 1 }, to = "2024-03-31" })
      assert.equals('{"column":"CLOSE_DATE","durationValue":"CUSTOM","endDate":null,"startDate":"2024-01-01"}',
        sdf{ from = F.date("2024-01-01T00:00:00Z") })
      assert.equals('{"column":"CLOSE_DATE","durationValue":"CUSTOM","endDate":null,"startDate":null}',
        sdf{ duration = "CUSTOM" })
      assert.equals('{"column":"CLOSE_DATE","durationValue":"CUSTOM","endDate":"2024-03-01","startDate":null}',
        sdf{ to = os.time{ year = 2024, month = 3, day = 1, hour = 12 } })
      -- parametrised literals are not listed by describe; accepted (unconfirmed)
      assert.equals('{"column":"CLOSE_DATE","durationValue":"LAST_N_DAYS:30","endDate":null,"startDate":null}',
        sdf("LAST_N_DAYS:30"))
    end)

    it("refuses a date literal the report type does not offer", function()
      assert_invalid("date filter 'THIS_FISCAL_YEARS' is not offered by this report type; "
        .. "did you mean 'THIS_FISCAL_YEAR'?",
        F.prepare({ date_filter = "THIS_FISCAL_YEARS" }, TAB))
      assert_invalid("date filter 'NEXT_MONTH' is not offered by this report type; "
        .. "offered: CUSTOM, THIS_FISCAL_YEAR, LAST_FISCAL_YEAR, THIS_FISCAL_QUARTER",
        F.prepare({ date_filter = "NEXT_MONTH" }, TAB))
      assert_invalid("date filter 'LAST_N_PARSECS:3' is not offered by this report type; "
        .. "offered: CUSTOM, THIS_FISCAL_YEAR, LAST_FISCAL_YEAR, THIS_FISCAL_QUARTER",
        F.prepare({ date_filter = "LAST_N_PARSECS:3" }, TAB))
    end)

    it("refuses a bad date filter column or range", function()
      assert_invalid("date_filter column 'AMOUNT' (Amount) is a currency column, not a date",
        F.prepare({ date_filter = { column = "Amount", duration = "THIS_FISCAL_YEAR" } }, TAB))
      assert_invalid("unknown column 'Closing Date' in date_filter; did you mean 'CLOSE_DATE' (Close Date)?",
        F.prepare({ date_filter = { column = "Closing Date", duration = "THIS_FISCAL_YEAR" } }, TAB))
      assert_invalid("date_filter starts on 2024-03-01, after it ends on 2024-01-01",
        F.prepare({ date_filter = { from = "2024-03-01", to = "2024-01-01" } }, TAB))
      assert_invalid("date_filter.from '03/01/2024' is not an ISO date (YYYY-MM-DD)",
        F.prepare({ date_filter = { from = "03/01/2024" } }, TAB))
      local d = deepcopy(TAB)
      d.reportMetadata.standardDateFilter = cjson.null
      assert_invalid("this report has no standard date filter column; name one with date_filter.column",
        F.prepare({ date_filter = "THIS_FISCAL_YEAR" }, d))
    end)

    it("sorts by one or more columns", function()
      local function sort(s)
        return enc(assert(F.prepare({ sort = s }, TAB)).sortBy)
      end
      assert.equals('[{"sortColumn":"AMOUNT","sortOrder":"asc"}]', sort("Amount"))
      assert.equals('[{"sortColumn":"AMOUNT","sortOrder":"desc"}]', sort{ "AMOUNT", "DESC" })
      assert.equals('[{"sortColumn":"CLOSE_DATE","sortOrder":"desc"}]', sort{ column = "Close Date", order = "desc" })
      assert.equals('[{"sortColumn":"AMOUNT","sortOrder":"asc"},{"sortColumn":"CLOSE_DATE","sortOrder":"desc"}]',
        sort{ "AMOUNT", { "CLOSE_DATE", "desc" } })
      assert.equals('[{"sortColumn":"AMOUNT","sortOrder":"asc"},{"sortColumn":"AGE","sortOrder":"asc"}]',
        sort{ "AMOUNT", "AGE" })
      assert_invalid("unknown column 'Amt' in sort (not a column of this report type)",
        F.prepare({ sort = "Amt" }, TAB))
    end)

    it("limits the rows only with a sort", function()
      local md = assert(F.prepare({ top = { rows = 5, direction = "desc" }, sort = "AMOUNT" }, TAB))
      assert.equals('{"direction":"Desc","rowLimit":5}', enc(md.topRows))
      assert_invalid("top rows need a sort: pass sort (the report has no saved sort)", F.prepare({ top = 5 }, TAB))
      local d = deepcopy(TAB)
      d.reportMetadata.sortBy = { { sortColumn = "AGE", sortOrder = "desc" } }
      md = assert(F.prepare({ top = 5 }, d))
      assert.equals('[{"sortColumn":"AGE","sortOrder":"desc"}]', enc(md.sortBy))
      assert.equals('{"direction":"Asc","rowLimit":5}', enc(md.topRows))
    end)

    it("chooses detail columns", function()
      local md = assert(F.prepare({ columns = { "Account Name", "STAGE_NAME", "amount" } }, TAB))
      assert.equals('["ACCOUNT_NAME","STAGE_NAME","AMOUNT"]', enc(md.detailColumns))
      assert_invalid("column 'AMOUNT' (Amount) is listed twice in columns",
        F.prepare({ columns = { "AMOUNT", "Amount" } }, TAB))
      assert_invalid("unknown column 'Amont' in columns; did you mean 'AMOUNT' (Amount)?",
        F.prepare({ columns = { "Amont" } }, TAB))
      local max = F.MAX_COLUMNS
      F.MAX_COLUMNS = 2
      local res, err = F.prepare({ columns = { "AMOUNT", "AGE", "TYPE" } }, TAB)
      F.MAX_COLUMNS = max
      assert_invalid("3 columns given; Salesforce processes at most 2", res, err)
    end)

    it("overrides groupings, switching a tabular report to summary", function()
      local md = assert(F.prepare({ groupings = { "Stage", { name = "CLOSE_DATE", sortOrder = "desc",
        dateGranularity = "Month" } } }, TAB))
      assert.equals("SUMMARY", md.reportFormat)
      assert.equals('[{"dateGranularity":"None","name":"STAGE_NAME","sortAggregate":null,"sortOrder":"Asc"},'
        .. '{"dateGranularity":"Month","name":"CLOSE_DATE","sortAggregate":null,"sortOrder":"Desc"}]',
        enc(md.groupingsDown))
      assert_invalid("date granularity 'Month' needs a date column, but 'AMOUNT' (Amount) is a currency column",
        F.prepare({ groupings = { { name = "AMOUNT", dateGranularity = "Month" } } }, TAB))
      assert_invalid("4 groupings given; a SUMMARY report has at most 3 grouping levels",
        F.prepare({ groupings = { "TYPE", "STAGE_NAME", "LEAD_SOURCE", "AMOUNT" } }, TAB))
    end)

    it("raises on misuse of the options", function()
      assert_raises("sfreports.filters.prepare: opts must be a table", F.prepare, nil, TAB)
      assert_raises("describe must be the report's decoded describe response", F.prepare, {}, nil)
      assert_raises("logic was given without filters", F.prepare, { logic = "1" }, TAB)
      assert_raises("with logic, filters must be single filters", F.prepare,
        { filters = { F.any{ F.eq("A", 1), F.eq("B", 2) } }, logic = "1" }, TAB)
      assert_raises("with logic, filters must be a plain list of filters", F.prepare,
        { filters = F.eq("A", 1), logic = "1" }, TAB)
      assert_raises("replace_filters must be a boolean or a list of column names", F.prepare,
        { replace_filters = "yes" }, TAB)
      assert_raises("date_filter has an unknown key 'form'", F.prepare, { date_filter = { form = "2024-01-01" } }, TAB)
      assert_raises("date_filter takes either duration or from/to, not both", F.prepare,
        { date_filter = { duration = "THIS_FISCAL_YEAR", from = "2024-01-01" } }, TAB)
      assert_raises("date_filter needs a duration", F.prepare, { date_filter = { column = "CLOSE_DATE" } }, TAB)
      assert_raises("sort order must be \"asc\" or \"desc\"", F.prepare, { sort = { column = "AGE", order = "up" } },
        TAB)
      assert_raises("sort must be", F.prepare, { sort = 3 }, TAB)
      assert_raises("top must be a positive integer", F.prepare, { top = 0, sort = "AGE" }, TAB)
      assert_raises("top has an unknown key 'limit'", F.prepare, { top = { limit = 3 }, sort = "AGE" }, TAB)
      assert_raises("columns must name at least one column", F.prepare, { columns = {} }, TAB)
      assert_raises("a grouping has an unknown key 'granularity'", F.prepare,
        { groupings = { { name = "AGE", granularity = "Month" } } }, TAB)
    end)
  end)

  describe("prepare without column information (hand-built metadata, e.g. for a query)", function()
    local md = {
      reportFormat = "TABULAR", detailColumns = { "ACCOUNT.NAME" },
      standardDateFilter = { column = "CLOSE_DATE", durationValue = "CUSTOM", startDate = cjson.null,
        endDate = cjson.null },
    }

    it("takes column names as given and still checks logic, counts and top", function()
      local out = assert(F.prepare({ filters = F.any{ F.eq("ACCOUNT.NAME", "Acme"), F.gt("AMOUNT", 5) },
        date_filter = "LAST_N_DAYS:7", sort = { "AMOUNT", "desc" }, top = 3 }, { reportMetadata = md }))
      assert.equals('{"historicalSnapshotDates":[],"reportBooleanFilter":"1 OR 2","reportFilters":['
        .. '{"column":"ACCOUNT.NAME","operator":"equals","value":"Acme"},'
        .. '{"column":"AMOUNT","operator":"greaterThan","value":"5"}],'
        .. '"sortBy":[{"sortColumn":"AMOUNT","sortOrder":"desc"}],'
        .. '"standardDateFilter":{"column":"CLOSE_DATE","durationValue":"LAST_N_DAYS:7","endDate":null,'
        .. '"startDate":null},"topRows":{"direction":"Asc","rowLimit":3}}', enc(out))
      assert_invalid("top rows need a sort: pass sort (the report has no saved sort)",
        F.prepare({ top = 3 }, { reportMetadata = md }))
      assert_invalid("date filter 'last 7 days' is not a date literal",
        F.prepare({ date_filter = "last 7 days" }, { reportMetadata = md }))
    end)
  end)

  describe("prepare with the anonymized v47 summary describe", function()
    it("appends new filters after the three saved ones", function()
      local md = assert(F.prepare({ filters = F.eq("label2", os.time{ year = 2020, month = 1, day = 2, hour = 12 }) },
        SUM))
      assert.equals('{"historicalSnapshotDates":[],"reportBooleanFilter":null,"reportFilters":['
        .. SAVED_SUM_FILTERS .. ',{"column":"Column2","operator":"equals","value":"2020-01-02"}],'
        .. SAVED_SUM_DATE .. '}', enc(md))
    end)

    it("wraps the implicit AND of the saved filters", function()
      local md = assert(F.prepare({ filters = F.any{ F.eq("Column2", "2020-01-01"), F.ge("Column2", "TODAY") } },
        SUM))
      assert.equals("(1 AND 2 AND 3) AND (4 OR 5)", md.reportBooleanFilter)
      assert.equals(5, #md.reportFilters)
    end)

    it("uses the report type's own operator map", function()
      -- the anonymized map allows only equals and greaterOrEqual on dates
      assert_invalid("operator 'lessThan' is not allowed on column 'Column2' (label2) of type date; "
        .. "allowed: equals, greaterOrEqual", F.prepare({ filters = F.lt("Column2", "2020-01-01") }, SUM))
    end)

    it("resolves labels from the categories and from detailColumnInfo", function()
      assert.equals("Column_1", (F.resolve_column(SUM, "Column 1")))
      assert.equals("Column7", (F.resolve_column(SUM, "label7")))
      assert.equals("Column", (F.resolve_column(SUM, "Column")))
    end)

    it("checks date literals against the offered durations, the saved one included", function()
      assert_invalid("date filter 'THIS_FISCAL_QUARTER' is not offered by this report type; "
        .. "offered: value, TODAY, CUSTOM", F.prepare({ date_filter = "THIS_FISCAL_QUARTER" }, SUM))
      local md = assert(F.prepare({ date_filter = "TODAY" }, SUM))
      assert.equals('{"column":"column","durationValue":"TODAY","endDate":null,"startDate":null}',
        enc(md.standardDateFilter))
    end)

    it("drops saved filters by their column name", function()
      local md = assert(F.prepare({ replace_filters = { "column" }, filters = F.eq("Column2", "TODAY") }, SUM))
      assert.equals('[{"column":"Column2","operator":"equals","value":"TODAY"}]', enc(md.reportFilters))
    end)

    it("checks date granularities against the report type", function()
      assert_invalid("date granularity 'Month' is not offered by this report type; offered: None, value",
        F.prepare({ groupings = { { name = "Column2", dateGranularity = "Month" } } }, SUM))
      local md = assert(F.prepare({ groupings = { "Column2" } }, SUM))
      assert.is_nil(md.reportFormat)
      assert.equals('[{"dateGranularity":"None","name":"Column2","sortAggregate":null,"sortOrder":"Asc"}]',
        enc(md.groupingsDown))
      md = assert(F.prepare({ groupings = {} }, SUM))
      assert.equals("TABULAR", md.reportFormat)
      assert.equals("[]", enc(md.groupingsDown))
    end)

    it("echoes snapshot dates only for historical report types", function()
      local d = deepcopy(SUM)
      d.reportMetadata.historicalSnapshotDates = { "2020-01-01", "2020-02-01" }
      assert.equals("[]", enc(assert(F.prepare({ sort = "Column2" }, d)).historicalSnapshotDates))
      d.reportTypeMetadata.isHistorical = true
      assert.equals('["2020-01-01","2020-02-01"]',
        enc(assert(F.prepare({ sort = "Column2" }, d)).historicalSnapshotDates))
    end)
  end)
end)
