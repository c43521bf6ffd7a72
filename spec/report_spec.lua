-- luacheck: std +busted
-- Specs of sfreports.report over every report-result fixture in spec/fixtures/ (copied
-- byte for byte from ../shared/reference/fixtures, see spec/fixtures/README_results.md)
-- plus hand-built results for the cases no recording covers. The expected numbers were
-- read off the JSON by hand; where a spec adds values up, it compares the sum with the
-- aggregate Salesforce computed.
local cjson = require "cjson"
local report = require "sfreports.report"
local json = require "sfreports.json"

local null = json.null

local load = require("fixtures").load

local function all_rows(r)
  local out = {}
  for row in r:rows() do out[#out + 1] = row end
  return out
end

local function keys_of(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.key end
  return out
end

-- A minimal result with one detail column per entry of `cols` ({name, label, type}).
local function tabular(cols, rows, extra)
  local names, info = {}, {}
  for i, c in ipairs(cols) do
    names[i] = c[1]
    info[c[1]] = { label = c[2], dataType = c[3] }
  end
  local body = {
    allData = true, hasDetailRows = true,
    groupingsDown = { groupings = {} }, groupingsAcross = { groupings = {} },
    factMap = { ["T!T"] = { aggregates = { { value = #rows, label = tostring(#rows) } }, rows = {} } },
    reportMetadata = { reportFormat = "TABULAR", detailColumns = names, aggregates = { "RowCount" },
                       id = "00O000000000001AAA", name = "Hand made" },
    reportExtendedMetadata = { detailColumnInfo = info,
                               aggregateColumnInfo = { RowCount = { label = "Record Count", dataType = "int" } } },
  }
  for i, cells in ipairs(rows) do body.factMap["T!T"].rows[i] = { dataCells = cells } end
  for k, v in pairs(extra or {}) do body[k] = v end
  return body
end

describe("sfreports.report", function()

  describe("module", function()
    it("builds with new(), by calling the module, and refuses non-tables with nil, err", function()
      local d = load("result_tabular_details.cghall.json")
      assert.is_true(report.is_report(report.new(d)))
      assert.is_true(report.is_report(report(d)))
      for _, v in ipairs({ "{}", false }) do
        local r, err = report.new(v)
        assert.is_nil(r)
        assert.are.equal("decode", err.kind)
      end
      local r, err = report(nil)
      assert.is_nil(r)
      assert.are.equal("decode", err.kind)
    end)

    it("uses cjson's null as its null", function()
      assert.are.equal(cjson.null, report.null)
      assert.are.equal(json.null, report.null)
      assert.are.equal(cjson.null, report.new(load("result_tabular_details.cghall.json")).null)
    end)

    it("leaves the decoded table untouched and reachable as raw", function()
      local d, body = load("result_summary_3groups_anon_v47.json")
      local r = report.new(d)
      for _ in r:rows() do end
      r:groups()
      r:grid(1)
      assert.are.equal(d, r.raw)
      assert.are.same(cjson.decode(body), d)
    end)
  end)

  describe("tabular fixture (cghall, v29)", function()
    local d = load("result_tabular_details.cghall.json")
    local r = report.new(d)

    it("has the report fields", function()
      assert.are.equal("TABULAR", r.format)
      assert.are.equal("00O58000000qu8XEAQ", r.id)
      assert.are.equal("[Analytics API Test] Basic Tabular", r.name)
      assert.is_true(r.all_data)
      assert.is_false(r.truncated)
      assert.is_true(r.has_details)
      assert.are.equal("Report", r.attributes.type)
      assert.is_nil(r.instance)
      assert.is_nil(r.status)
    end)

    it("lists the detail columns in detailColumns order with labels and types", function()
      local cols = r:columns()
      assert.are.equal(15, #cols)
      assert.are.same({ "SALUTATION", "Salutation", "picklist", 1 },
        { cols[1].name, cols[1].label, cols[1].data_type, cols[1].index })
      assert.are.same({ "FIRST_NAME", "First Name", "string" }, { cols[2].name, cols[2].label, cols[2].data_type })
      assert.are.same({ "EMAIL", "Email", "email" }, { cols[13].name, cols[13].label, cols[13].data_type })
      assert.are.same({ "ACCOUNT.NAME", "Account Name" }, { cols[15].name, cols[15].label })
      assert.are.same({}, r:grouping_columns())
      assert.are.equal("Record Count", r:aggregate_columns()[1].label)
    end)

    it("yields the 20 rows in fact-map order, with no groups", function()
      local rows = all_rows(r)
      assert.are.equal(20, #rows)
      assert.are.equal(20, r:row_count())
      local last = {}
      for i, row in ipairs(rows) do
        assert.are.equal(i, row.index)
        assert.are.equal("T!T", row.key)
        assert.are.equal(0, #row.groups)
        last[i] = row:label("LAST_NAME")
      end
      assert.are.equal("Frank", last[1])
      assert.are.equal("D'Cruz", last[3])
      assert.are.equal("Nedaerk", last[20])
    end)

    it("keeps both the record id and the name of name/lookup cells", function()
      local row = r:rows()()
      local first = row:cell("FIRST_NAME")
      assert.are.equal("003580000025sonAAA", first.value)
      assert.are.equal("Edna", first.label)
      assert.are.equal("003580000025sonAAA", first.id)
      local acct = row:cell("ACCOUNT.NAME")
      assert.are.same({ "00158000002dk2UAAQ", "GenePoint", "00158000002dk2UAAQ" }, { acct.value, acct.label, acct.id })
      assert.are.equal("Chris Hall", row:label("OWNER_FULL_NAME"))
      -- plain strings have no id
      assert.is_nil(row:cell("TITLE").id)
      assert.are.equal("VP, Technology", row:value("TITLE"))
    end)

    it("keeps JSON null as report.null, with the label as sent", function()
      local row = r:rows()()
      local city = row:cell("ADDRESS2_CITY")
      assert.are.equal(null, city.value)
      assert.are.equal("-", city.label)
      assert.are.equal(null, row:value(6))
    end)

    it("builds typed cells once, in column order, each pointing at its column and raw cell", function()
      local row = r:rows()()
      local cells = row.cells
      assert.are.equal(cells, row.cells)
      assert.are.equal(15, #cells)
      for i, c in ipairs(cells) do
        assert.are.equal(r:columns()[i], c.column)
        assert.are.equal(row.data_cells[i], c.raw)
      end
      assert.are.equal("345 Shoreline Park<br>Mountain View, CA 94043<br>USA", cells[5].label)
    end)

    it("exposes T!T with its RowCount aggregate", function()
      local groups = r:groups()
      assert.are.equal(1, #groups)
      local tt = groups[1]
      assert.are.equal("T!T", tt.key)
      assert.is_true(tt.is_grand_total)
      assert.is_true(tt.is_leaf)
      assert.are.equal(20, tt.row_count)
      assert.are.equal(20, tt.aggregates[1].value)
      assert.are.equal("20", tt.aggregates.RowCount.label)
      assert.are.equal("Record Count", tt.aggregates.RowCount.column.label)
      assert.are.equal(20, r:total("RowCount").value)
      assert.are.equal(20, r:total(1).value)
    end)

    it("returns records keyed by API name", function()
      local rec = r:rows()():record()
      assert.are.equal("003580000025sonAAA", rec.FIRST_NAME)
      assert.are.equal(null, rec.ADDRESS2_CITY)
      local labels = r:rows()():record({ labels = true })
      assert.are.equal("Edna", labels.FIRST_NAME)
    end)
  end)

  describe("summary fixture, one grouping (cghall, v29)", function()
    local d = load("result_summary_1group_details.cghall.json")
    local r = report.new(d)

    it("has one down grouping column", function()
      assert.are.equal("SUMMARY", r.format)
      local g = r:grouping_columns()
      assert.are.equal(1, #g)
      assert.are.same({ "TYPE", "Type", "picklist", "down", 1, 1, "None" },
        { g[1].name, g[1].label, g[1].data_type, g[1].axis, g[1].level, g[1].index, g[1].date_granularity })
    end)

    it("yields 8 then 5 rows, each carrying its group's key, value and label", function()
      local rows = all_rows(r)
      assert.are.equal(13, #rows)
      for i, row in ipairs(rows) do
        local g = row.groups[1]
        assert.are.equal(1, #row.groups)
        if i <= 8 then
          assert.are.same({ "0!T", "0", "Customer - Direct", "Customer - Direct" },
            { row.key, g.key, g.value, g.label })
        else
          assert.are.same({ "1!T", "1", "Customer - Channel" }, { row.key, g.key, g.value })
        end
        assert.are.equal(g, row:group("TYPE"))
        assert.are.equal(r:grouping_columns()[1], g.column)
      end
      assert.are.equal("Burlington Textiles Corp of America", rows[1]:label("ACCOUNT.NAME"))
      assert.are.equal("sForce", rows[13]:label("ACCOUNT.NAME"))
    end)

    it("types currency as amount plus code and keeps dates as ISO strings", function()
      local row = r:rows()()
      local sales = row:cell("SALES")
      assert.are.equal(350000000, sales.value)
      assert.are.equal("number", type(sales.value))
      assert.are.equal(null, sales.currency)
      assert.are.equal("£350,000,000", sales.label)
      local created = row:cell("CREATED_DATE")
      assert.are.equal("2016-01-16", created.value)
      assert.are.equal("16/01/2016", created.label)
      -- a null currency cell is null, with no currency
      local rows = all_rows(r)
      assert.are.equal(null, rows[4]:value("SALES"))
      assert.is_nil(rows[4]:cell("SALES").currency)
    end)

    it("has subtotals and a grand total that match the rows", function()
      local groups = r:groups()
      assert.are.same({ "0!T", "1!T", "T!T" }, keys_of(groups))
      local sums = { ["0!T"] = 0, ["1!T"] = 0 }
      for row in r:rows() do
        local v = row:value("SALES")
        if v ~= null then sums[row.key] = sums[row.key] + v end
      end
      local g0, g1, tt = groups[1], groups[2], groups[3]
      assert.are.equal(6589000000, g0.aggregates["s!SALES"].value)
      assert.are.equal(sums["0!T"], g0.aggregates["s!SALES"].value)
      assert.are.equal(8, g0.aggregates.RowCount.value)
      assert.are.equal(2880000000, g1.aggregates["s!SALES"].value)
      assert.are.equal(sums["1!T"], g1.aggregates["s!SALES"].value)
      assert.are.equal(5, g1.aggregates[2].value)
      assert.are.equal(9469000000, tt.aggregates["s!SALES"].value)
      assert.are.equal("£9,469,000,000", tt.aggregates["s!SALES"].label)
      assert.are.equal("Sum of Annual Revenue", tt.aggregates["s!SALES"].column.label)
      assert.are.equal(13, r:total("RowCount").value)
      assert.are.same({ 8, 5, 0 }, { g0.row_count, g1.row_count, tt.row_count })
      assert.are.equal("Customer - Direct", g0.down[1].label)
      assert.are.equal(0, #tt.groups)
      assert.is_true(g0.is_leaf)
      assert.is_false(tt.is_leaf)
      assert.are.equal(g1, r:group("1!T"))
      assert.are.equal(2880000000, r:aggregate("1!T", "s!SALES").value)
      assert.is_nil(r:group("7!T"))
    end)
  end)

  describe("matrix fixture, 2 down x 1 across, with details (cghall, v29)", function()
    local d = load("result_matrix_2x1_details.cghall.json")
    local r = report.new(d)

    it("lists grouping columns down levels then across levels", function()
      local g = r:grouping_columns()
      assert.are.equal(3, #g)
      assert.are.same({ "TYPE", "down", 1 }, { g[1].name, g[1].axis, g[1].level })
      assert.are.same({ "ACCOUNT_NAME", "Account Name", "down", 2 }, { g[2].name, g[2].label, g[2].axis, g[2].level })
      assert.are.same({ "CLOSE_DATE", "Close Date", "date", "across", 1, "Month" },
        { g[3].name, g[3].label, g[3].data_type, g[3].axis, g[3].level, g[3].date_granularity })
    end)

    it("yields the 18 rows down tree first, across tree second", function()
      local rows = all_rows(r)
      assert.are.equal(18, #rows)
      local order = {}
      for i, row in ipairs(rows) do order[i] = row.key end
      assert.are.same({ "0_0!0", "0_0!3", "0_1!2", "0_2!5", "0_2!6", "0_3!0", "0_3!1", "0_3!3", "0_3!3",
                        "0_3!5", "0_4!3", "1_0!4", "1_1!0", "1_2!5", "1_3!3", "1_4!5", "1_5!3", "1_6!3" }, order)
    end)

    it("gives each row the keys, values and labels of all its groups", function()
      local row = r:rows()()
      local g = row.groups
      assert.are.equal(3, #g)
      assert.are.same({ "0", "Existing Customer - Upgrade" }, { g[1].key, g[1].label })
      assert.are.same({ "0_0", "00158000002dk2KAAQ", "Edge Communications", "00158000002dk2KAAQ" },
        { g[2].key, g[2].value, g[2].label, g[2].id })
      assert.are.same({ "0", "2013-05-01", "May 2013", "across" }, { g[3].key, g[3].value, g[3].label, g[3].axis })
      assert.are.equal("Edge Installation", row:label("OPPORTUNITY_NAME"))
      assert.are.equal(50000, row:value("AMOUNT"))
    end)

    it("exposes all 120 fact-map entries, empty cells included, in tree order", function()
      local groups = r:groups()
      assert.are.equal(120, #groups)
      assert.are.equal("0!0", groups[1].key)
      assert.are.equal("0!T", groups[8].key)
      assert.are.equal("0_0!0", groups[9].key)
      assert.are.equal("T!T", groups[120].key)
      local empty = r:group("0_0!1")
      assert.are.equal(0, empty.aggregates["s!AMOUNT"].value)
      assert.are.equal("£0.00", empty.aggregates["s!AMOUNT"].label)
      assert.are.equal(0, empty.row_count)
      assert.are.equal(1185000, r:aggregate("0_3!T", "s!AMOUNT").value)
      assert.are.equal(1760000, r:aggregate("T!3", "s!AMOUNT").value)
      local sub = r:group("0_3!T")
      assert.are.same({ "0", "0_3" }, keys_of(sub.down))
      assert.are.equal(0, #sub.across)
    end)

    it("sums the detail amounts to the grand total", function()
      local sum = 0
      for row in r:rows() do sum = sum + row:value("AMOUNT") end
      assert.are.equal(3645000, sum)
      assert.are.equal(3645000, r:total("s!AMOUNT").value)
    end)

    it("builds the full grid with subtotals and totals", function()
      local grid = r:grid("s!AMOUNT")
      assert.are.equal(15, #grid.down) -- 2 types + 12 accounts + total
      assert.are.equal(8, #grid.across) -- 7 months + total
      assert.are.same({ "0", 1 }, { grid.down[1].key, grid.down[1].level })
      assert.are.same({ "0_0", 2 }, { grid.down[2].key, grid.down[2].level })
      assert.are.same({ "T", 0 }, { grid.down[15].key, grid.down[15].level })
      assert.are.equal("T", grid.across[8].key)
      assert.are.equal(3645000, grid.values[15][8])
      assert.are.equal(50000, grid.values[2][1]) -- 0_0!0
      assert.are.equal(0, grid.values[2][2]) -- 0_0!1, an empty cell
      assert.are.equal("£1,760,000.00", grid.labels[15][4])
    end)
  end)

  describe("matrix fixture, 2 down x 2 across, summary only (cghall, v29)", function()
    local d = load("result_matrix_2x2_nodetails.cghall.json")
    local r = report.new(d)

    it("has no rows but four grouping columns", function()
      assert.is_false(r.has_details)
      assert.are.equal(0, #all_rows(r))
      assert.are.equal(0, r:row_count())
      local g = r:grouping_columns()
      assert.are.same({ "TYPE", "ACCOUNT_NAME", "FISCAL_QUARTER", "CLOSE_DATE" },
        { g[1].name, g[2].name, g[3].name, g[4].name })
      assert.are.same({ "down", "down", "across", "across" }, { g[1].axis, g[2].axis, g[3].axis, g[4].axis })
    end)

    it("exposes every entry with three named aggregates and no row count", function()
      local groups = r:groups()
      assert.are.equal(225, #groups)
      local e = r:group("0_1!2_0")
      assert.is_nil(e.row_count)
      assert.are.equal(3, #e.aggregates)
      assert.are.same({ 0, 0, 0 }, { e.aggregates["s!SALES"].value, e.aggregates["s!AMOUNT"].value,
                                     e.aggregates.RowCount.value })
      assert.are.same({ "0", "0_1" }, keys_of(e.down))
      assert.are.same({ "2", "2_0" }, keys_of(e.across))
      assert.are.equal("Q3-2013", e.across[1].label)
      assert.are.equal("September 2013", e.across[2].label)
      assert.are.same({ 7569000000, 1790000, 7 }, { r:aggregate("1!T", 1).value, r:aggregate("1!T", 2).value,
                                                    r:aggregate("1!T", 3).value })
      assert.are.same({ 5630000000, 150000, 2 }, { r:aggregate("T!3", 1).value, r:aggregate("T!3", 2).value,
                                                   r:aggregate("T!3", 3).value })
      local tt = r:group("T!T")
      assert.are.same({ 7569000000, 3645000, 18 }, { tt.aggregates[1].value, tt.aggregates[2].value,
                                                     tt.aggregates[3].value })
    end)

    it("builds the 15 x 15 grid", function()
      local grid = r:grid("RowCount")
      assert.are.equal(15, #grid.down)
      assert.are.equal(15, #grid.across) -- 6 quarters + 8 months + total
      assert.are.equal(18, grid.values[15][15])
      local n = 0
      for i = 1, #grid.down do
        for j = 1, #grid.across do
          assert.are.equal("number", type(grid.values[i][j]))
          n = n + 1
        end
      end
      assert.are.equal(225, n)
    end)
  end)

  describe("summary fixture, three groupings (reportforce, anonymized v47)", function()
    local d = load("result_summary_3groups_anon_v47.json")
    local r = report.new(d)

    it("yields 162 rows, each in three groups whose keys make up its fact-map key", function()
      local rows = all_rows(r)
      assert.are.equal(162, #rows)
      for _, row in ipairs(rows) do
        assert.are.equal(3, #row.groups)
        local k1, k2, k3 = row.groups[1].key, row.groups[2].key, row.groups[3].key
        assert.are.equal(k3 .. "!T", row.key)
        assert.are.equal(k2, k3:match("^(.*)_%d+$"))
        assert.are.equal(k1, k2:match("^(.*)_%d+$"))
        assert.are.equal(7, #row.data_cells)
      end
      assert.are.equal("0_0_0!T", rows[1].key)
      assert.are.equal("0_0_0!T", rows[7].key)
      assert.are.equal("0_0_1!T", rows[8].key)
      assert.are.equal("1_0_0!T", rows[9].key)
      assert.are.equal("16_0_1!T", rows[162].key)
    end)

    it("has 67 entries whose leaf row counts add up to the grand total", function()
      local groups = r:groups()
      assert.are.equal(67, #groups)
      local leaves, rows_in_leaves = 0, 0
      for _, e in ipairs(groups) do
        if e.is_leaf then
          leaves = leaves + 1
          rows_in_leaves = rows_in_leaves + e.row_count
          assert.are.equal(e.row_count, e.aggregates.RowCount.value)
        end
      end
      assert.are.equal(32, leaves)
      assert.are.equal(162, rows_in_leaves)
      assert.are.equal(162, r:total("RowCount").value)
      assert.are.equal(7, r:aggregate("0_0_0!T", "RowCount").value)
      assert.are.equal(16, r:aggregate("10!T", "RowCount").value)
    end)

    it("passes newer keys through untouched", function()
      local row = r:rows()()
      assert.are.equal("escapedLabel", row.cells[3].raw.escapedLabel)
      assert.are.same({}, r.raw.picklistColors)
      assert.are.equal("TODAY", r.metadata.standardDateFilter.durationValue)
      assert.are.equal(true, r:grouping_columns()[1].info.isLookup)
    end)
  end)

  describe("matrix fixture (reportforce, anonymized v47)", function()
    local d = load("result_matrix_anon_v47.json")
    local r = report.new(d)

    it("reads rows from leaf x leaf entries only", function()
      local rows = all_rows(r)
      assert.are.equal(24, #rows)
      for _, row in ipairs(rows) do
        assert.is_truthy(row.key:match("^%d+_%d+!%d+_%d+$"))
        assert.are.equal(4, #row.groups)
      end
      assert.are.equal("0_0!0_2", rows[1].key)
      assert.are.same({ "Supervisor1", "Worker1", "Product", "DeliveryDay3" },
        { rows[1].groups[1].label, rows[1].groups[2].label, rows[1].groups[3].label, rows[1].groups[4].label })
    end)

    it("names its aggregate as the metadata does", function()
      assert.are.equal(102, #r:groups())
      assert.are.equal(24, r:total("rowCount").value)
      assert.are.equal("Row Sum", r:total("rowCount").column.label)
    end)
  end)

  describe("dashboard component reportResult (docs example)", function()
    local d = load("dashboard_results_docs.json")
    local component = d.componentData[1]

    it("accepts the reportResult and the component itself", function()
      for _, src in ipairs({ component.reportResult, component }) do
        local r = report.new(src)
        assert.are.equal("SUMMARY", r.format)
        assert.are.equal("00OD0000001g2nWMAQ", r.id)
        assert.are.equal("Simple Test", r.name)
        assert.is_nil(r.attributes) -- JSON null
        assert.is_false(r.has_details)
        assert.are.equal(0, #r:columns())
        assert.are.equal(1, #r:grouping_columns()) -- groupingsAcross is null
        assert.are.equal(0, #all_rows(r))
      end
    end)

    it("keeps a null grouping value as null and reads long decimals as numbers", function()
      local r = report.new(component.reportResult)
      assert.are.same({ "0!T", "1!T", "2!T", "T!T" }, keys_of(r:groups()))
      local g0 = r:group("0!T")
      assert.are.equal(null, g0.down[1].value)
      assert.are.equal("-", g0.down[1].label)
      assert.is_true(math.abs(g0.aggregates["s!AMOUNT"].value - 10083.333333333334) < 1e-9)
      assert.is_true(math.abs(r:total("s!AMOUNT").value - 67043365.50166918) < 1e-6)
      assert.are.equal("USD 67,043,365.50", r:total(1).label)
    end)
  end)

  describe("hand-made results", function()
    it("types values from the column data type", function()
      local r = report.new(tabular({
        { "AMT", "Amount", "currency" }, { "N", "Count", "int" }, { "P", "Pct", "percent" },
        { "D", "Ratio", "double" }, { "B", "Flag", "boolean" }, { "REF", "Owner", "reference" },
        { "DT", "When", "datetime" }, { "PICK", "Stage", "picklist" }, { "S", "Text", "string" },
      }, { {
        { value = { amount = 12.5, currency = "EUR" }, label = "EUR 12.50" },
        { value = "42", label = "42" },
        { value = 60, label = "60%" },
        { value = "-1.5e3", label = "-1,500" },
        { value = "true", label = "True" },
        { value = "005000000000001", label = "Ann Owner" },
        { value = "2024-02-29T23:59:59Z", label = "29/02/2024 23:59" },
        { value = "Closed_Won_Stage_1", label = "Closed Won" },
        { value = "12", label = "12" },
      } }))
      local row = r:rows()()
      assert.are.same({ 12.5, "EUR" }, { row:value("AMT"), row:cell("AMT").currency })
      assert.are.equal(42, row:value("N"))
      assert.are.equal(60, row:value("P"))
      assert.are.equal(-1500, row:value("D"))
      assert.are.equal(true, row:value("B"))
      assert.are.equal("005000000000001", row:cell("REF").id)
      assert.are.equal("2024-02-29T23:59:59Z", row:value("DT"))
      assert.is_nil(row:cell("PICK").id) -- a picklist API name is not a record id
      assert.are.equal("12", row:value("S")) -- strings stay strings
    end)

    it("keeps unicode labels byte for byte", function()
      local r = report.new(tabular({ { "NAME", "Nom du compte ✓", "string" } }, {
        { { value = "Société Générale", label = "Société Générale" } },
        { { value = "東京商事", label = "東京商事 🚀" } },
      }))
      local rows = all_rows(r)
      assert.are.equal("Nom du compte ✓", r:columns()[1].label)
      assert.are.equal("Société Générale", rows[1]:label(1))
      assert.are.equal("東京商事 🚀", rows[2]:label("NAME"))
    end)

    it("treats a cell without a value key as null and tolerates short rows", function()
      local r = report.new(tabular({ { "A", "A", "string" }, { "B", "B", "string" } }, {
        { { label = "only a label" } },
      }))
      local row = r:rows()()
      assert.are.equal(null, row:value(1))
      assert.are.equal("only a label", row:label(1))
      assert.is_nil(row:cell("B"))
      assert.are.equal(1, #row.cells)
    end)

    it("handles an empty report", function()
      local r = report.new(tabular({ { "A", "A", "string" } }, {}))
      assert.are.equal(0, #all_rows(r))
      assert.are.equal(1, #r:groups())
      assert.are.equal(0, r:total(1).value)
    end)

    it("reports truncation from allData and from hasExceededTabularRowLimit", function()
      local r1 = report.new(tabular({}, {}, { allData = false }))
      assert.is_false(r1.all_data)
      assert.is_true(r1.truncated)
      local r2 = report.new(tabular({}, {}, { allData = true, hasExceededTabularRowLimit = true }))
      assert.is_false(r2.all_data)
      assert.is_true(r2.truncated)
      local r3 = report.new(tabular({}, {}, { hasExceededTabularRowLimit = false }))
      assert.is_true(r3.all_data)
    end)

    it("reads instance attributes, and refuses an unfinished instance without a fact map", function()
      local attributes = { type = "ReportInstance", id = "0LGR00000000He3OAE", status = "Running",
                           ownerId = "005R0000000Hv5rIAC", completionDate = null,
                           requestDate = "2015-08-12T16:05:43Z", reportId = "00OR0000000K2UeMAK",
                           reportName = "Deals", queryable = false }
      local unfinished, err = report.new({ attributes = attributes })
      assert.is_nil(unfinished)
      assert.are.equal("decode", err.kind)
      assert.are.equal('report result: no factMap (instance status "Running": not finished, or no results)',
        err.message)
      assert.are.same({ "00OR0000000K2UeMAK", "0LGR00000000He3OAE" }, { err.report_id, err.instance_id })
      local r = report.new({ attributes = attributes, factMap = { ["T!T"] = { aggregates = {} } } })
      assert.are.equal("Running", r.status)
      assert.are.same({ "0LGR00000000He3OAE", "Running", "005R0000000Hv5rIAC", null, "2015-08-12T16:05:43Z", false },
        { r.instance.id, r.instance.status, r.instance.owner_id, r.instance.completion_date,
          r.instance.request_date, r.instance.queryable })
      assert.are.equal("00OR0000000K2UeMAK", r.id)
      assert.are.equal("Deals", r.name)
      assert.are.equal("TABULAR", r.format)
      assert.are.equal(0, #all_rows(r))
      assert.are.same({ "T!T" }, keys_of(r:groups()))
      assert.are.same({}, r:columns())
      assert.is_nil(r:total(1))
    end)

    it("gives a Query result (reportId null) no id", function()
      local r = report.new(tabular({}, {}, { attributes = { type = "Report", reportId = null } }))
      r.raw.reportMetadata.id = nil
      r = report.new(r.raw)
      assert.is_nil(r.id)
    end)

    it("computes missing node keys and infers the format from the trees", function()
      local d = {
        groupingsDown = { groupings = {
          { value = "a", label = "A", groupings = { { value = "x", label = "X", groupings = {} } } },
          { value = "b", label = "B", groupings = {} },
        } },
        factMap = {
          ["0_0!T"] = { aggregates = {}, rows = { { dataCells = { { value = 1, label = "1" } } } } },
          ["1!T"] = { aggregates = {}, rows = { { dataCells = { { value = 2, label = "2" } } } } },
          ["0!T"] = { aggregates = {} }, ["T!T"] = { aggregates = {} },
        },
      }
      local r = report.new(d)
      assert.are.equal("SUMMARY", r.format)
      local rows = all_rows(r)
      assert.are.equal(2, #rows)
      assert.are.same({ "0", "0_0" }, keys_of(rows[1].groups))
      -- the shallower leaf has a placeholder for the level it lacks
      assert.are.equal("1", rows[2].groups[1].key)
      assert.is_true(rows[2].groups[2].missing)
      assert.are.equal(null, rows[2].groups[2].value)
      assert.are.equal("Grouping (down 2)", r:grouping_columns()[2].label)
    end)

    it("falls back to T!T rows when no leaf holds any", function()
      local d = tabular({ { "A", "A", "string" } }, { { { value = "v", label = "v" } } })
      d.groupingsDown = { groupings = { { key = "0", value = "g", label = "G", groupings = {} } } }
      d.factMap["0!T"] = { aggregates = {}, rows = {} }
      local rows = all_rows(report.new(d))
      assert.are.equal(1, #rows)
      assert.are.equal("T!T", rows[1].key)
    end)

    it("reads null containers as absent and keeps unknown keys in groups()", function()
      -- wrong types are refused: see spec/report_shapes_spec.lua
      local d = {
        reportMetadata = { reportFormat = "SUMMARY", detailColumns = null, aggregates = { 1 } },
        groupingsDown = null, groupingsAcross = { groupings = null },
        factMap = {
          ["T!T"] = { aggregates = { { value = null, label = null } },
                      rows = { { dataCells = {} }, { dataCells = {} } } },
          ["weird"] = { aggregates = null },
        },
      }
      local r = report.new(d)
      local rows = all_rows(r)
      assert.are.equal(2, #rows)
      assert.are.equal(0, #rows[1].data_cells)
      assert.are.same({}, rows[2].cells)
      local keys = keys_of(r:groups())
      assert.are.same({ "T!T", "weird" }, keys)
      assert.are.equal(null, r:total(1).value)
    end)
  end)

  describe("joined reports (MULTI_BLOCK, shapes are guesses: no public recording exists)", function()
    local function joined(detail_columns, fm, extra)
      local d = {
        allData = true, hasDetailRows = true,
        reportMetadata = { reportFormat = "MULTI_BLOCK", detailColumns = detail_columns,
                           aggregates = { "RowCount" } },
        reportExtendedMetadata = { detailColumnInfo = {} },
        groupingsDown = { groupings = {} }, groupingsAcross = { groupings = {} },
        factMap = fm,
      }
      for k, v in pairs(extra or {}) do d[k] = v end
      return d
    end
    local function rows_of(...)
      local out = {}
      for i, cells in ipairs({ ... }) do
        local dc = {}
        for j, v in ipairs(cells) do dc[j] = { value = v, label = tostring(v) } end
        out[i] = { dataCells = dc }
      end
      return out
    end

    it("splits block-prefixed keys into blocks, maps prefixed columns, and yields rows per block", function()
      local r = report.new(joined({ "B0#ACCOUNT.NAME", "B0#TYPE", "B1#OPPORTUNITY.NAME", "B1#AMOUNT" }, {
        ["B1#T!T"] = { aggregates = { { value = 1, label = "1" } }, rows = rows_of({ "Deal", 5 }) },
        ["B0#T!T"] = { aggregates = { { value = 2, label = "2" } },
                       rows = rows_of({ "Acme", "Customer" }, { "Umbrella", "Partner" }) },
        ["T!T"] = { aggregates = { { value = 3, label = "3" } } },
      }))
      assert.are.equal("MULTI_BLOCK", r.format)
      local blocks = r:blocks()
      assert.are.same({ "B0", "B1" }, { blocks[1].id, blocks[2].id })
      assert.are.same({ "B0#ACCOUNT.NAME", "B0#TYPE" }, { blocks[1].columns[1].name, blocks[1].columns[2].name })
      assert.are.equal(2, blocks[1].row_count)
      local rows = all_rows(r)
      assert.are.equal(3, #rows)
      assert.are.same({ "B0", "B0", "B1" }, { rows[1].block, rows[2].block, rows[3].block })
      assert.are.same({ 3, 4 }, rows[3].slots)
      assert.are.equal("Deal", rows[3]:value("B1#OPPORTUNITY.NAME"))
      assert.are.equal(5, rows[3]:value("B1#AMOUNT"))
      assert.are.equal(r:columns()[4], rows[3].cells[2].column)
      assert.are.equal(3, r:total(1).value) -- the plain T!T when present
      assert.are.equal(2, r:aggregate("B0#T!T", 1).value)
      assert.are.equal("B1", r:group("B1#T!T").block)
    end)

    it("uses all detail columns when widths match, and synthesises columns otherwise", function()
      local r = report.new(joined({ "NAME", "AMOUNT" }, {
        ["B0#T!T"] = { aggregates = {}, rows = rows_of({ "a", 1 }) },
        ["B1#T!T"] = { aggregates = {}, rows = rows_of({ "b", 2, "extra" }) },
      }))
      local rows = all_rows(r)
      assert.is_nil(rows[1].slots)
      assert.are.equal(1, rows[1]:value("AMOUNT"))
      assert.are.equal(5, #r:columns())
      assert.are.same({ 3, 4, 5 }, rows[2].slots)
      assert.are.equal("B1 column 3", r:columns()[5].label)
      assert.are.equal("extra", rows[2]:value(3))
    end)

    it("reads grouped blocks, resolving group keys with or without the prefix", function()
      local d = joined({ "NAME" }, {
        ["B0#0!T"] = { aggregates = {}, rows = rows_of({ "x" }) },
        ["B0#1!T"] = { aggregates = {}, rows = rows_of({ "y" }) },
        ["B0#T!T"] = { aggregates = {}, rows = {} },
        ["B1#0!T"] = { aggregates = {}, rows = rows_of({ "z" }) },
      }, { groupingsDown = { groupings = {
        { key = "0", value = "g0", label = "G0", groupings = {} },
        { key = "B0#1", value = "g1", label = "G1", groupings = {} },
      } } })
      d.reportMetadata.groupingsDown = { { name = "TYPE" } }
      local rows = all_rows(report.new(d))
      assert.are.equal(3, #rows)
      assert.are.same({ "B0#0!T", "G0" }, { rows[1].key, rows[1].groups[1].label })
      assert.are.same({ "B0#1!T", "G1" }, { rows[2].key, rows[2].groups[1].label })
      assert.are.same({ "B1#0!T", "G0" }, { rows[3].key, rows[3].groups[1].label })
    end)

    it("orders blocks naturally and never crashes on unknown prefixes", function()
      local fm = {}
      for _, b in ipairs({ "B10", "B2", "B1" }) do
        fm[b .. "#T!T"] = { aggregates = {}, rows = rows_of({ b }) }
      end
      fm["x:y!T"] = { aggregates = {}, rows = rows_of({ "odd" }) }
      fm["B3#nonsense!T"] = { aggregates = {}, rows = rows_of({ "n" }) }
      local r = report.new(joined({ "NAME" }, fm))
      local ids = {}
      for i, b in ipairs(r:blocks()) do ids[i] = b.id end
      assert.are.same({ "B1", "B2", "B3", "B10", "x" }, ids)
      local labels = {}
      for row in r:rows() do labels[#labels + 1] = row:label(1) end
      assert.are.same({ "B1", "B2", "n", "B10", "odd" }, labels)
      assert.are.equal(5, #r:groups())
    end)

    it("reads a MULTI_BLOCK result without prefixes like any other", function()
      local d = joined({ "NAME" }, { ["T!T"] = { aggregates = {}, rows = rows_of({ "a" }, { "b" }) } })
      local r = report.new(d)
      assert.are.same({}, r:blocks())
      local rows = all_rows(r)
      assert.are.equal(2, #rows)
      assert.is_nil(rows[1].block)
    end)
  end)

  describe("parse_key", function()
    it("splits block prefix, down and across paths", function()
      assert.are.same({ "", "0_1", "2" }, { report.parse_key("0_1!2") })
      assert.are.same({ "", "T", "T" }, { report.parse_key("T!T") })
      assert.are.same({ "B0#", "0", "T" }, { report.parse_key("B0#0!T") })
      assert.are.same({ "B1#", "T", "0_1" }, { report.parse_key("B1#T!0_1") })
      assert.is_nil(report.parse_key("weird"))
      assert.is_nil(report.parse_key(7))
    end)
  end)
end)
