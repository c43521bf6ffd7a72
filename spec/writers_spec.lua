-- luacheck: std +busted
-- Specs of sfreports.writers: exact CSV/TSV/JSON output for fixtures and hand-made
-- reports, a read-back of every fixture in both modes through an independent RFC 4180
-- parser, streaming (one sink call per row, during iteration), sinks and failures.
local cjson = require "cjson"
local report = require "sfreports.report"
local writers = require "sfreports.writers"

local null = cjson.null
local unpack = table.unpack or unpack -- luacheck: ignore 113

local fixtures = require "fixtures"

-- The fixture decoded (the first value only: fixtures.load also gives the text).
local function load(name) return (fixtures.load(name)) end

local FIXTURES = {
  "result_tabular_details.cghall.json", "result_summary_1group_details.cghall.json",
  "result_matrix_2x1_details.cghall.json", "result_matrix_2x2_nodetails.cghall.json",
  "result_summary_3groups_anon_v47.json", "result_matrix_anon_v47.json",
}

-- Collects everything written into a string; also counts the calls.
local function collector()
  local parts = {}
  local sink = function(chunk) parts[#parts + 1] = chunk end
  return sink, function() return table.concat(parts) end, function() return #parts end
end

local function write(fmt, src, opts)
  local sink, text = collector()
  local n, err = writers.write(fmt, src, sink, opts)
  assert(n, err)
  return text(), n
end

local function lines(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

-- RFC 4180 reader (written for the specs, independent of the writer): records of fields.
local function parse_csv(text)
  local records, record, field = {}, {}, {}
  local i, n, quoted = 1, #text, false
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then
          field[#field + 1] = '"'
          i = i + 1
        else
          quoted = false
        end
      else
        field[#field + 1] = c
      end
    elseif c == '"' then
      quoted = true
    elseif c == "," then
      record[#record + 1] = table.concat(field)
      field = {}
    elseif c == "\n" then
      record[#record + 1] = table.concat(field)
      records[#records + 1] = record
      record, field = {}, {}
    else
      field[#field + 1] = c
    end
    i = i + 1
  end
  assert(#field == 0 and #record == 0, "text does not end with a line end")
  return records
end

-- Linear-TSV reader: split on TAB and LF, then unescape \t \n \r \\.
local UNESCAPE = { t = "\t", n = "\n", r = "\r", ["\\"] = "\\" }
local function parse_tsv(text)
  local records = {}
  for line in text:gmatch("([^\n]*)\n") do
    local record = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do
      record[#record + 1] = field:gsub("\\(.)", UNESCAPE)
    end
    records[#records + 1] = record
  end
  return records
end

-- What a field must hold, by the contract (an independent statement of it).
local function expected(c, raw)
  if c == nil then return "" end
  local v = c.value
  if v == null then return "" end
  if not raw then return c.label end
  if type(v) == "table" and v.amount ~= nil then v = v.amount end
  if v == null then return "" end
  if type(v) == "boolean" then return tostring(v) end
  return v -- a string, or a number the field must read back to
end

local function check_field(field, want, where)
  if type(want) == "number" then
    assert.are.equal(want, tonumber(field), where)
    if want == math.floor(want) and math.abs(want) < 2 ^ 53 then
      assert.is_truthy(field:match("^%-?%d+$"), where .. ": integer written as " .. field)
    end
  else
    assert.are.equal(want, field, where)
  end
end

-- A hand-made tabular result: cols = { {name, label, type}, ... }, rows = { {cells...} }
local function tabular(cols, rows, fmt)
  local names, info = {}, {}
  for i, c in ipairs(cols) do
    names[i] = c[1]
    info[c[1]] = { label = c[2], dataType = c[3] or "string" }
  end
  local fm_rows = {}
  for i, cells in ipairs(rows) do fm_rows[i] = { dataCells = cells } end
  return report.new({
    allData = true, hasDetailRows = true,
    groupingsDown = { groupings = {} }, groupingsAcross = { groupings = {} },
    factMap = { ["T!T"] = { aggregates = {}, rows = fm_rows } },
    reportMetadata = { reportFormat = fmt or "TABULAR", detailColumns = names, aggregates = {} },
    reportExtendedMetadata = { detailColumnInfo = info },
  })
end

local function labels(...)
  local out = {}
  for i, s in ipairs({ ... }) do out[i] = { value = s, label = s } end
  return out
end

describe("sfreports.writers", function()

  describe("CSV, fixtures", function()
    it("writes the summary fixture: grouping label first, labels, empty fields for nulls", function()
      local text, n = write("csv", report.new(load("result_summary_1group_details.cghall.json")))
      assert.are.equal(13, n)
      local l = lines(text)
      assert.are.equal(14, #l)
      assert.are.equal("Type,Account Owner,Account Name,Billing State/Province,Rating,Industry,Created Date,"
        .. "Annual Revenue", l[1])
      assert.are.equal('Customer - Direct,Chris Hall,Burlington Textiles Corp of America,NC,Warm,Apparel,'
        .. '16/01/2016,"£350,000,000"', l[2])
      assert.are.equal("Customer - Direct,Chris Hall,Python Inc,Greater London,Warm,Technology,16/01/2016,", l[5])
      assert.are.equal('Customer - Direct,Chris Hall,"United Oil & Gas, Singapore",Singapore,,Energy,16/01/2016,',
        l[6])
      assert.are.equal('Customer - Channel,Chris Hall,sForce,CA,Warm,,16/01/2016,"£900,000,000"', l[14])
      assert.are.equal("\n", text:sub(-1))
    end)

    it("writes values in raw mode: ids, ISO dates, currency amounts as integers", function()
      local text = write("csv", report.new(load("result_summary_1group_details.cghall.json")), { raw = true })
      local l = lines(text)
      assert.are.equal("Type,Account Owner,Account Name,Billing State/Province,Rating,Industry,Created Date,"
        .. "Annual Revenue", l[1])
      assert.are.equal("Customer - Direct,00558000000FkaVAAS,00158000002dk2LAAQ,NC,Warm,Apparel,2016-01-16,350000000",
        l[2])
      assert.are.equal("Customer - Direct,00558000000FkaVAAS,00158000002JCJLAA4,Greater London,Warm,Technology,"
        .. "2016-01-16,", l[5])
    end)

    it("writes the matrix fixture with down then across grouping columns", function()
      local r = report.new(load("result_matrix_2x1_details.cghall.json"))
      local l = lines(write("csv", r))
      assert.are.equal(19, #l)
      assert.are.equal("Type,Account Name,Close Date,Opportunity Name,Amount,Stage,Fiscal Period,Opportunity Owner",
        l[1])
      assert.are.equal('Existing Customer - Upgrade,Edge Communications,May 2013,Edge Installation,"£50,000.00",'
        .. "Closed Won,Q2-2013,Chris Hall", l[2])
      local raw = lines(write("csv", r, { raw = true }))
      assert.are.equal("Existing Customer - Upgrade,00158000002dk2KAAQ,2013-05-01,00658000002PyUJAA0,50000,"
        .. "Closed Won,Q2-2013,00558000000FkaVAAS", raw[2])
    end)

    it("writes only the header for a summary-only result", function()
      local text, n = write("csv", report.new(load("result_matrix_2x2_nodetails.cghall.json")))
      assert.are.equal(0, n)
      assert.are.equal("Type,Account Name,Fiscal Period,Close Date,Annual Revenue,Opportunity Name,Amount,Stage,"
        .. "Opportunity Owner\n", text)
    end)

    for _, name in ipairs(FIXTURES) do
      for _, raw in ipairs({ false, true }) do
        it(("reads back %s (%s mode) field by field"):format(name, raw and "raw" or "label"), function()
          local r = report.new(load(name))
          for _, fmt in ipairs({ "csv", "tsv" }) do
            local text = write(fmt, r, { raw = raw })
            local records = fmt == "csv" and parse_csv(text) or parse_tsv(text)
            local gcols, cols = r:grouping_columns(), r:columns()
            assert.are.equal(r:row_count() + 1, #records)
            local header = records[1]
            assert.are.equal(#gcols + #cols, #header)
            for i, g in ipairs(gcols) do assert.are.equal(g.label, header[i]) end
            for i, c in ipairs(cols) do assert.are.equal(c.label, header[#gcols + i]) end
            local k = 1
            for row in r:rows() do
              k = k + 1
              local rec = records[k]
              assert.are.equal(#header, #rec)
              for i = 1, #gcols do
                check_field(rec[i], expected(row.groups[i], raw), ("%s row %d group %d"):format(fmt, k, i))
              end
              for i = 1, #cols do
                check_field(rec[#gcols + i], expected(row.data_cells[i], raw), ("%s row %d col %d"):format(fmt, k, i))
              end
            end
          end
        end)
      end
    end
  end)

  describe("CSV, RFC 4180", function()
    it("quotes fields with comma, quote, CR or LF, doubles quotes, and ends lines with LF", function()
      local r = tabular({ { "A", "Plain" }, { "B", "With, comma" }, { "C", 'Say "hi"' }, { "D", "D" }, { "E", "E" },
                          { "F", "F" }, { "G", "G" } },
        { labels("plain", "a,b", 'say "hi"', "line1\nline2", "crlf\r\nx", "", " spaced ") })
      local text = write("csv", r)
      assert.are.equal('Plain,"With, comma","Say ""hi""",D,E,F,G\n'
        .. 'plain,"a,b","say ""hi""","line1\nline2","crlf\r\nx",, spaced \n', text)
      local rec = parse_csv(text)[2]
      assert.are.same({ "plain", "a,b", 'say "hi"', "line1\nline2", "crlf\r\nx", "", " spaced " }, rec)
    end)

    it("keeps unicode as UTF-8 bytes", function()
      local r = tabular({ { "N", "Nom ✓" } }, { labels("Société Générale"), labels("東京商事, 🚀") })
      assert.are.equal('Nom ✓\nSociété Générale\n"東京商事, 🚀"\n', write("csv", r))
    end)

    it("writes a JSON null as an empty field in both modes, whatever the label", function()
      local r = tabular({ { "A", "A" }, { "B", "B", "currency" }, { "C", "C" } },
        { { { value = null, label = "-" }, { value = { amount = null, currency = null }, label = "-" },
            { value = "x", label = "x" } } })
      -- a currency object with a null amount is null too, as report cells type it
      assert.are.equal(null, r:rows()():value("B"))
      assert.are.equal("A,B,C\n,,x\n", write("csv", r))
      assert.are.equal("A,B,C\n,,x\n", write("csv", r, { raw = true }))
      assert.are.equal('{"A":null,"B":null,"C":"x"}\n', (write("jsonl", r)))
      assert.are.equal('{"A":null,"B":null,"C":"x"}\n', (write("jsonl", r, { raw = true })))
    end)

    it("writes a null grouping value as an empty field", function()
      local d = load("dashboard_results_docs.json").componentData[1].reportResult
      -- give the dashboard's summary result one detail column and a row under the null group
      d.reportMetadata.detailColumns = { "NAME" }
      d.reportExtendedMetadata.detailColumnInfo = { NAME = { label = "Name", dataType = "string" } }
      d.factMap["0!T"].rows = { { dataCells = { { value = "Deal", label = "Deal" } } } }
      d.factMap["1!T"].rows = { { dataCells = { { value = "Other", label = "Other" } } } }
      local r = report.new(d)
      assert.are.equal("Type,Name\n,Deal\nExisting Business,Other\n", write("csv", r))
      assert.are.equal("Type,Name\n,Deal\nExisting Business,Other\n", write("csv", r, { raw = true }))
    end)

    it("writes numbers as the shortest decimal that reads back, integers without a fraction", function()
      local values = cjson.decode("[350000000, 0.1, 16000.010000000000218278728425502777099609375, "
        .. "0.3333333333333333, -0.5, 9007199254740992, 1e21, 2.5e-7, -0.0, 12.0]")
      local cells = {}
      for i, v in ipairs(values) do cells[i] = { value = v, label = "L" .. i } end
      local cols = {}
      for i = 1, #values do cols[i] = { "C" .. i, "C" .. i, "double" } end
      local text = write("csv", tabular(cols, { cells }), { raw = true })
      assert.are.equal("350000000,0.1,16000.01,0.3333333333333333,-0.5,9007199254740992,1e+21,2.5e-07,0,12",
        lines(text)[2])
      for _, v in ipairs(values) do
        assert.are.equal(v, tonumber(writers.format_number(v)))
      end
    end)

    it("writes currency as its amount, booleans as true/false, dates and strings as given", function()
      local r = tabular({ { "A", "A", "currency" }, { "B", "B", "boolean" }, { "C", "C", "boolean" },
                          { "D", "D", "date" }, { "E", "E", "datetime" }, { "F", "F" } },
        { { { value = { amount = 1234.5, currency = "EUR" }, label = "EUR 1,234.50" },
            { value = true, label = "True" }, { value = false, label = "False" },
            { value = "2016-01-16", label = "16/01/2016" }, { value = "2016-01-16T10:00:00Z", label = "x" },
            { value = { lat = 1 }, label = "somewhere" } } })
      assert.are.equal('1234.5,true,false,2016-01-16,2016-01-16T10:00:00Z,"{""lat"":1}"',
        lines(write("csv", r, { raw = true }))[2])
      assert.are.equal('"EUR 1,234.50",True,False,16/01/2016,x,somewhere', lines(write("csv", r))[2])
    end)

    it("survives labels that are not strings", function()
      local r = tabular({ { "A", "A" }, { "B", "B" }, { "C", "C" }, { "D", "D" }, { "E", "E", "int" } },
        { { { value = "x, y", label = "x, y" }, { value = 7, label = 7 }, { value = 1, label = null },
            { value = "v", label = true }, { value = "5", label = { odd = true } } },
          { { value = "a", label = "a" }, { value = 2.5, label = 2.5 }, { value = false },
            { value = "w", label = "w" }, { value = 3, label = "3" } } })
      assert.are.equal('A,B,C,D,E\n"x, y",7,1,v,5\na,2.5,false,w,3\n', (write("csv", r)))
      assert.are.equal('A\tB\tC\tD\tE\nx, y\t7\t1\tv\t5\na\t2.5\tfalse\tw\t3\n', (write("tsv", r)))
    end)

    it("writes rows at the header's width", function()
      local r = tabular({ { "A", "A" }, { "B", "B" }, { "C", "C" } }, { labels("1"), labels("1", "2", "3", "4") })
      assert.are.equal("A,B,C\n1,,\n1,2,3\n", write("csv", r))
    end)
  end)

  describe("formula guard", function()
    local r = tabular({ { "A", "=Head" }, { "B", "B" }, { "C", "C" }, { "D", "D" }, { "E", "E" }, { "F", "F" },
                        { "G", "G" }, { "H", "H", "double" } },
      { { { value = "=SUM(A1)", label = "=SUM(A1)" }, { value = "+1", label = "+1" },
          { value = "-2", label = "-2" }, { value = "@cmd", label = "@cmd" }, { value = "=1,2", label = "=1,2" },
          { value = "safe", label = "safe" }, { value = null, label = "-" }, { value = -5, label = "-5" } } })

    it("prefixes a ' to fields starting with = + - @ when asked", function()
      assert.are.equal("'=Head,B,C,D,E,F,G,H\n'=SUM(A1),'+1,'-2,'@cmd,\"'=1,2\",safe,,'-5\n",
        write("csv", r, { formula_guard = true }))
    end)

    it("leaves numbers written from values alone", function()
      assert.are.equal("'=SUM(A1),'+1,'-2,'@cmd,\"'=1,2\",safe,,-5", lines(write("csv", r, { formula_guard = true,
        raw = true }))[2])
    end)

    it("is off by default", function()
      assert.are.equal('=SUM(A1),+1,-2,@cmd,"=1,2",safe,,-5', lines(write("csv", r))[2])
    end)

    it("applies to TSV, and not to JSON", function()
      assert.are.equal("'=SUM(A1)\t'+1\t'-2\t'@cmd\t'=1,2\tsafe\t\t'-5",
        lines(write("tsv", r, { formula_guard = true }))[2])
      local obj = cjson.decode(lines(write("jsonl", r, { formula_guard = true }))[1])
      assert.are.equal("=SUM(A1)", obj.A)
    end)
  end)

  describe("TSV", function()
    it("escapes TAB, LF, CR and backslash so that no line breaks", function()
      local r = tabular({ { "A", "Tab\there" }, { "B", "B" }, { "C", "C" }, { "D", "D" }, { "E", "E" } },
        { labels("a\tb", "l1\nl2", "cr\rx", "back\\slash", "plain, with \"quotes\"") })
      local text = write("tsv", r)
      assert.are.equal("Tab\\there\tB\tC\tD\tE\n"
        .. "a\\tb\tl1\\nl2\tcr\\rx\tback\\\\slash\tplain, with \"quotes\"\n", text)
      assert.are.same({ "a\tb", "l1\nl2", "cr\rx", "back\\slash", 'plain, with "quotes"' }, parse_tsv(text)[2])
    end)
  end)

  describe("JSON and JSON Lines", function()
    local summary = report.new(load("result_summary_1group_details.cghall.json"))

    it("writes an array of objects keyed by API name, grouping fields first", function()
      local text, n = write("json", summary)
      assert.are.equal(13, n)
      assert.are.equal("[\n{\"TYPE\":", text:sub(1, 10))
      assert.are.equal("}\n]\n", text:sub(-4))
      local rows = cjson.decode(text)
      assert.are.equal(13, #rows)
      assert.are.same({ TYPE = "Customer - Direct", ["USERS.NAME"] = "Chris Hall",
                        ["ACCOUNT.NAME"] = "Burlington Textiles Corp of America", ADDRESS1_STATE = "NC",
                        RATING = "Warm", INDUSTRY = "Apparel", CREATED_DATE = "16/01/2016",
                        SALES = "£350,000,000" }, rows[1])
      assert.are.equal(null, rows[4].SALES)
      assert.are.equal(null, rows[5].RATING)
    end)

    it("writes typed values in raw mode", function()
      local rows = cjson.decode((write("json", summary, { raw = true })))
      assert.are.same({ TYPE = "Customer - Direct", ["USERS.NAME"] = "00558000000FkaVAAS",
                        ["ACCOUNT.NAME"] = "00158000002dk2LAAQ", ADDRESS1_STATE = "NC", RATING = "Warm",
                        INDUSTRY = "Apparel", CREATED_DATE = "2016-01-16", SALES = 350000000 }, rows[1])
      assert.are.equal(null, rows[4].SALES)
    end)

    it("writes one object per line as JSON Lines", function()
      local text = write("jsonl", summary, { raw = true })
      local l = lines(text)
      assert.are.equal(13, #l)
      for i, line in ipairs(l) do
        local obj = cjson.decode(line)
        assert.are.equal(i <= 8 and "Customer - Direct" or "Customer - Channel", obj.TYPE)
      end
      assert.are.equal(text, write("ndjson", summary, { raw = true }))
    end)

    it("makes repeated keys unique", function()
      local r = report.new(load("result_summary_3groups_anon_v47.json"))
      local text = write("jsonl", r)
      local first = text:match("^[^\n]*")
      assert.is_truthy(first:find('^{"Column1":"label","Column2":"label","Column3":"label","Column1_2":'))
      local obj = cjson.decode(first)
      assert.are.equal("label", obj.Column7)
      assert.are.equal(162, #lines(text))
    end)

    it("writes valid JSON for an empty report and for hard strings", function()
      assert.are.equal("[]\n", (write("json", tabular({ { "A", "A" } }, {}))))
      assert.are.equal("", (write("jsonl", tabular({ { "A", "A" } }, {}))))
      local hard = { 'q"uote', "back\\slash", "ctl\1\31", "del\127", "a/b</script>", "nl\n\r\t",
                     "ünï €😀", "" }
      local r = tabular({ { "A", "A" }, { "B", "B" }, { "C", "C" }, { "D", "D" }, { "E", "E" }, { "F", "F" },
                          { "G", "G" }, { 'Key "quoted"', "H" } }, { labels(unpack(hard)) })
      for _, raw in ipairs({ false, true }) do
        local obj = cjson.decode((write("json", r, { raw = raw })))[1]
        for i, s in ipairs(hard) do
          assert.are.equal(s, obj[i == 8 and 'Key "quoted"' or string.char(64 + i)])
        end
      end
    end)

    it("writes numbers exactly, booleans and nulls", function()
      local r = tabular({ { "A", "A", "double" }, { "B", "B", "boolean" }, { "C", "C", "currency" }, { "D", "D" } },
        { { { value = 0.1, label = "0.1" }, { value = false, label = "No" },
            { value = { amount = 16000.01, currency = "USD" }, label = "$16,000.01" },
            { value = null, label = "-" } } })
      local text = write("jsonl", r, { raw = true })
      assert.are.equal('{"A":0.1,"B":false,"C":16000.01,"D":null}\n', text)
      assert.are.equal('{"A":"0.1","B":"No","C":"$16,000.01","D":null}\n', (write("jsonl", r)))
    end)
  end)

  describe("streaming", function()
    it("writes each row while the rows are being iterated", function()
      local r = report.new(load("result_tabular_details.cghall.json"))
      for _, fmt in ipairs({ "csv", "tsv", "json", "jsonl" }) do
        local chunks, yielded = 0, 0
        local before = (fmt == "jsonl") and 0 or 1 -- chunks written by header()
        local inner = r:rows()
        local iter = function()
          -- when row k is asked for, the header and the k-1 rows before it are written
          assert.are.equal(before + yielded, chunks)
          local row = inner()
          if row then yielded = yielded + 1 end
          return row
        end
        local w = writers.new(fmt, function() chunks = chunks + 1 end)
        assert.is_true(w:header(r))
        assert.are.equal(20, w:rows(iter))
        assert.are.equal(20, w:finish())
      end
    end)

    it("makes one sink call per row, plus header and trailer", function()
      local r = report.new(load("result_tabular_details.cghall.json"))
      local sink, _, count = collector()
      assert.are.equal(20, writers.csv(r, sink))
      assert.are.equal(21, count())
      sink, _, count = collector()
      assert.are.equal(20, writers.json(r, sink))
      assert.are.equal(22, count()) -- "[", 20 rows, "\n]\n"
    end)

    it("streams several pages into one writer", function()
      local d = load("result_tabular_details.cghall.json")
      local page1, page2 = report.new(d), report.new(load("result_tabular_details.cghall.json"))
      local sink, text = collector()
      local w = writers.new("csv", sink)
      assert.is_true(w:header(page1))
      assert.are.equal(20, w:rows(page1:rows()))
      for row in page2:rows() do assert.is_true(w:row(row)) end
      assert.are.equal(40, w:finish())
      local l = lines(text())
      assert.are.equal(41, #l)
      assert.are.equal(l[2], l[22])
    end)

    it("writes to file handles and to tables with a write method", function()
      local r = report.new(load("result_summary_1group_details.cghall.json"))
      local expected_text = write("csv", r)
      local f = io.tmpfile()
      assert.are.equal(13, writers.csv(r, f))
      f:seek("set", 0)
      assert.are.equal(expected_text, f:read("*a"))
      f:close()
      local buf = { parts = {} }
      function buf:write(chunk) self.parts[#self.parts + 1] = chunk end
      assert.are.equal(13, writers.csv(r, buf))
      assert.are.equal(expected_text, table.concat(buf.parts))
    end)

    it("accepts a row iterator with a column description", function()
      local rows = {
        { cells = { { value = 1, label = "one" }, { value = "b", label = "Bee" } },
          groups = { { value = "g", label = "Gee" } } },
        { cells = { { value = 2, label = "two" } }, groups = { { value = null, label = "-" } } },
      }
      local i = 0
      local iter = function() i = i + 1 return rows[i] end
      local sink, text = collector()
      assert.are.equal(2, writers.csv(iter, sink, { columns = { "A", { name = "B", label = "Bee col" } },
                                                    grouping_columns = { "G" } }))
      assert.are.equal("G,A,Bee col\nGee,one,Bee\n,two,\n", text())
      i = 0
      sink, text = collector()
      writers.jsonl(iter, sink, { columns = { "A", { name = "B", label = "Bee col" } }, grouping_columns = { "G" },
                                  raw = true })
      assert.are.equal('{"G":"g","A":1,"B":"b"}\n{"G":null,"A":2,"B":null}\n', text())
    end)

    it("writes the header only with header = true (the default)", function()
      local r = tabular({ { "A", "A" } }, { labels("x") })
      assert.are.equal("x\n", (write("csv", r, { header = false })))
      assert.are.equal("A\nx\n", (write("csv", r, { header = true })))
    end)
  end)

  describe("joined reports", function()
    local r = report.new({
      reportMetadata = { reportFormat = "MULTI_BLOCK", aggregates = {},
                         detailColumns = { "B0#ACCOUNT.NAME", "B0#TYPE", "B1#OPPORTUNITY.NAME", "B1#AMOUNT" } },
      reportExtendedMetadata = { detailColumnInfo = {
        ["B0#ACCOUNT.NAME"] = { label = "Account Name" }, ["B0#TYPE"] = { label = "Type" },
        ["B1#OPPORTUNITY.NAME"] = { label = "Opportunity" }, ["B1#AMOUNT"] = { label = "Amount" } } },
      factMap = {
        ["B0#T!T"] = { aggregates = {}, rows = { { dataCells = labels("Acme", "Customer, direct") } } },
        ["B1#T!T"] = { aggregates = {}, rows = { { dataCells = { { value = "Deal", label = "Deal" },
                                                              { value = 5, label = "$5" } } } } },
      },
    })

    it("adds a Block column and places each block's cells under its columns", function()
      assert.are.equal('Block,Account Name,Type,Opportunity,Amount\nB0,Acme,"Customer, direct",,\nB1,,,Deal,$5\n',
        (write("csv", r)))
      assert.are.equal("B1,,,Deal,5", lines(write("csv", r, { raw = true }))[3])
    end)

    it("writes only the block's own fields in JSON", function()
      local l = lines(write("jsonl", r, { raw = true }))
      assert.are.equal('{"block":"B0","B0#ACCOUNT.NAME":"Acme","B0#TYPE":"Customer, direct"}', l[1])
      assert.are.equal('{"block":"B1","B1#OPPORTUNITY.NAME":"Deal","B1#AMOUNT":5}', l[2])
      local arr = cjson.decode((write("json", r)))
      assert.are.equal(2, #arr)
    end)
  end)

  describe("failures and misuse", function()
    local r = report.new(load("result_tabular_details.cghall.json"))

    it("stops at the first failed write and returns the sink's error from then on", function()
      local calls = 0
      local sink = function()
        calls = calls + 1
        if calls == 3 then return nil, "disk full" end
        return true
      end
      local n, err = writers.csv(r, sink)
      assert.is_nil(n)
      assert.are.equal("disk full", err)
      assert.are.equal(3, calls)
      calls = 0
      local w = writers.new("json", sink)
      assert.is_true(w:header(r))
      local it = r:rows()
      assert.is_true(w:row(it()))
      local ok, e2 = w:row(it())
      assert.is_nil(ok)
      assert.are.equal("disk full", e2)
      assert.are.same({ nil, "disk full" }, { w:row(it()) })
      assert.are.same({ nil, "disk full" }, { w:finish() })
    end)

    it("treats a false return as a failure, and a sink returning nothing as success", function()
      assert.are.same({ nil, "sink failed" }, { writers.csv(r, function() return false end) })
      assert.are.equal(20, writers.csv(r, function() end))
    end)

    it("raises on programmer errors", function()
      assert.has_error(function() writers.new("xlsx", function() end) end)
      assert.has_error(function() writers.new("csv", function() end, { rawmode = true }) end)
      assert.has_error(function() writers.new("csv", "not a sink") end)
      assert.has_error(function() writers.new("csv", {}) end)
      assert.has_error(function() writers.csv(function() end, function() end) end) -- no opts.columns
      assert.has_error(function() writers.csv(42, function() end) end)
      local w = writers.new("csv", function() end)
      assert.has_error(function() w:row({}) end)
      assert.has_error(function() w:finish() end)
      w:header(r)
      assert.has_error(function() w:header(r) end)
      w:finish()
      assert.has_error(function() w:row({}) end)
      assert.has_error(function() w:finish() end)
    end)
  end)
end)
