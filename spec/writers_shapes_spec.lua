-- luacheck: std +busted
-- Specs of sfreports.writers for odd shapes: cells that are bare numbers, strings,
-- booleans or JSON null where Salesforce sends { value, label } objects (no writer may
-- raise: each formats the value), a report without any column (an empty file, not empty
-- lines), and the "table" format (aligned columns, numbers to the right).
local cjson = require "cjson"
local report = require "sfreports.report"
local writers = require "sfreports.writers"

local null = cjson.null

local function write(fmt, src, opts)
  local parts = {}
  local n, err = writers.write(fmt, src, function(c) parts[#parts + 1] = c end, opts)
  assert(n, err)
  return table.concat(parts), n
end

local FORMATS = { "csv", "tsv", "json", "jsonl", "table" }

describe("sfreports.writers, odd shapes", function()
  local columns = { { name = "A", label = "A" }, { name = "N", label = "N", data_type = "int" },
    { name = "C", label = "C", data_type = "currency" }, { name = "B", label = "B" } }

  local function rows_of(list)
    local i = 0
    return function()
      i = i + 1
      return list[i]
    end
  end

  it("formats a bare number, string, boolean or null cell as its value, in every format and mode", function()
    local list = { { cells = { 5, "text", 2.5, true } }, { cells = { null, 7, false, { value = "x", label = "X" } } } }
    local want = {
      csv = { [false] = "A,N,C,B\n5,text,2.5,true\n,7,false,X\n", [true] = "A,N,C,B\n5,text,2.5,true\n,7,false,x\n" },
      jsonl = { [false] = '{"A":5,"N":"text","C":2.5,"B":true}\n{"A":null,"N":7,"C":false,"B":"X"}\n',
        [true] = '{"A":5,"N":"text","C":2.5,"B":true}\n{"A":null,"N":7,"C":false,"B":"x"}\n' },
    }
    for _, fmt in ipairs(FORMATS) do
      for _, raw in ipairs({ false, true }) do
        local text = write(fmt, rows_of(list), { columns = columns, raw = raw })
        if want[fmt] then assert.are.equal(want[fmt][raw], text, fmt) end
        assert.truthy(#text > 0)
      end
    end
    local one = write("json", rows_of(list), { columns = columns, raw = true })
    assert.are.same({ A = 5, N = "text", C = 2.5, B = true }, cjson.decode(one)[1])
  end)

  it("formats numbers where labels (and grouping labels) are expected", function()
    local src = { columns = { { name = "A", label = "A" } }, grouping_columns = { { name = "G", label = "G" } } }
    local list = { { cells = { { value = 1, label = 1 } }, groups = { 3 } },
      { cells = { { value = 2.5, label = 2.5 } }, groups = { { value = 4, label = 4 } } } }
    for _, fmt in ipairs(FORMATS) do
      local w = writers.new(fmt, function() end)
      assert.is_true(w:header(src))
      for _, row in ipairs(list) do assert.is_true(w:row(row)) end
      assert.are.equal(2, w:finish())
    end
    assert.are.equal("G,A\n3,1\n4,2.5\n", write("csv", rows_of(list), { columns = src.columns,
      grouping_columns = src.grouping_columns }))
  end)

  it("writes nothing at all for a report without columns: an empty CSV, not one empty line", function()
    local r = report.new({
      allData = true, hasDetailRows = false,
      groupingsDown = { groupings = {} }, groupingsAcross = { groupings = {} },
      factMap = { ["T!T"] = { aggregates = { { value = 3, label = "3" } } } },
      reportMetadata = { reportFormat = "TABULAR", detailColumns = {}, aggregates = { "RowCount" } },
      reportExtendedMetadata = { detailColumnInfo = {} },
    })
    for _, fmt in ipairs({ "csv", "tsv", "table" }) do
      local text, n = write(fmt, r)
      assert.are.equal("", text, fmt)
      assert.are.equal(0, n)
    end
    assert.are.equal("[]\n", (write("json", r)))
    -- rows without any column write nothing either
    assert.are.equal("", (write("csv", rows_of({ { cells = {} }, { cells = {} } }), { columns = {} })))
  end)

  it("aligns the table format: header, rule, numbers right-aligned, fields TSV-escaped", function()
    local list = { { cells = { { value = "a\tb", label = "a\tb" }, { value = 5, label = "5" },
      { value = { amount = 1200, currency = "USD" }, label = "$1,200.00" }, { value = "東京", label = "東京" } } },
      { cells = { { value = "longer text", label = "longer text" }, { value = 12345, label = "12,345" },
        { value = { amount = null }, label = "-" }, { value = "x", label = "x" } } } }
    local text = write("table", rows_of(list), { columns = columns })
    assert.are.equal(table.concat({
      "A            N       C          B",
      "-----------  ------  ---------  ----",
      "a\\tb              5  $1,200.00  東京",
      "longer text  12,345             x",
    }, "\n") .. "\n", text)
    local parts = {}
    assert.are.equal(2, writers.table(rows_of(list), function(c) parts[#parts + 1] = c end, { columns = columns }))
    assert.are.equal(text, table.concat(parts))
  end)

  it("buffers the table until finish(), and reports a failing sink", function()
    local calls = 0
    local w = writers.new("table", function() calls = calls + 1 end)
    assert.is_true(w:header({ columns = columns }))
    assert.is_true(w:row({ cells = { 1, 2, 3, 4 } }))
    assert.are.equal(0, calls)
    assert.are.equal(1, w:finish())
    assert.are.equal(3, calls)
    local failing = writers.new("table", function() return nil, "disk full" end)
    failing:header({ columns = columns })
    failing:row({ cells = {} })
    assert.are.same({ nil, "disk full" }, { failing:finish() })
  end)
end)
