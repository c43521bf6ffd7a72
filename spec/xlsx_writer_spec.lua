-- xlsx_writer_spec: writers.xlsx (sfreports.writers.xlsx over the C module sfreports.xlsx
-- and libxlsxwriter) read back by an independent reader (unzip(1) + the sheet XML parsed
-- in Lua, spec/support/xlsx_reader.lua): for every fixture of the fake org and both
-- modes, the same rows, types and values as the CSV and JSON writers; the header, the
-- frozen pane, the autofilter, widths; text that is never a formula and always valid;
-- currency formats per cell; the Totals and Matrix sheets; paged sources (run_all) and
-- failures that leave no file.
local sfreports = require "sfreports"
local writers = require "sfreports.writers"
local fakeorg = require "fakeorg"
local reader = require "xlsx_reader"
local cjson = require "cjson"

local R = fakeorg.reports
local q = fakeorg.shell_quote

local org, client, DIR

-- RFC 4180 (LF line ends, as the CSV writer writes): rows of fields.
local function parse_csv(text)
  local rows, row, i, n = {}, {}, 1, #text
  while i <= n do
    local field, stop
    if text:sub(i, i) == '"' then
      local parts, j = {}, i + 1
      while true do
        local qpos = assert(text:find('"', j, true), "unterminated quoted field")
        parts[#parts + 1] = text:sub(j, qpos - 1)
        if text:sub(qpos + 1, qpos + 1) == '"' then
          parts[#parts + 1] = '"'
          j = qpos + 2
        else
          stop = qpos + 1
          break
        end
      end
      field = table.concat(parts)
    else
      stop = text:find("[,\n]", i) or n + 1
      field = text:sub(i, stop - 1)
    end
    row[#row + 1] = field
    local sep = text:sub(stop, stop)
    i = stop + 1
    if sep ~= "," then
      rows[#rows + 1] = row
      row = {}
    end
  end
  return rows
end

-- What fn(source, sink, opts) writes.
local function capture(fn, source, opts)
  local parts = {}
  assert(fn(source, function(s) parts[#parts + 1] = s end, opts))
  return table.concat(parts)
end

-- The kind of each output column, as the writer is documented to choose it.
local KIND = { int = "number", double = "number", currency = "currency", percent = "percent",
  date = "date", datetime = "datetime", time = "time", boolean = "boolean" }

local function column_kinds(report, raw)
  local kinds = {}
  if report.format == "MULTI_BLOCK" then kinds[1] = "text" end
  for _, g in ipairs(report:grouping_columns()) do kinds[#kinds + 1] = raw and KIND[g.data_type] or "text" end
  for _, c in ipairs(report:columns()) do kinds[#kinds + 1] = KIND[c.data_type] or "text" end
  return kinds
end

local function close_to(a, b)
  if type(a) ~= "number" or type(b) ~= "number" then return false end
  return math.abs(a - b) <= 1e-9 * math.max(1, math.abs(a), math.abs(b))
end

-- Compares sheet 1 of path with the CSV (this mode) and JSON (raw) writers' output.
local function assert_same_as_writers(report, path, raw)
  local csv = parse_csv(capture(writers.csv, report, { raw = raw }))
  local json = cjson.decode(capture(writers.json, report, { raw = true }))
  local sheet = reader.open(path):sheet(1)
  local kinds = column_kinds(report, raw)
  local header = csv[1]
  -- the header: bold labels, the CSV header's
  for c, label in ipairs(header) do
    local cell = sheet.rows[1][c]
    assert.are.equal(label, cell.value)
    assert.is_true(cell.bold)
  end
  assert.are.equal(#csv, sheet.last_row, "rows")
  local keys
  local problems = {}
  local function check(ok, where, detail)
    if not ok and #problems < 10 then problems[#problems + 1] = where .. ": " .. tostring(detail) end
  end
  for r = 2, #csv do
    local obj = json[r - 1]
    if not keys then
      -- JSON keys in column order: the writer's own order (grouping, then detail)
      keys = {}
      local line = capture(writers.jsonl, { columns = function() return report:columns() end,
        grouping_columns = function() return report:grouping_columns() end, format = report.format,
        blocks = function() return report:blocks() end, rows = function()
          local done = false
          return function() if done then return nil end done = true return { data_cells = {}, groups = {} } end
        end }, { raw = true })
      for k in line:gmatch('"([^"]+)":') do keys[#keys + 1] = k end
    end
    local row = sheet.rows[r] or {}
    for c, field in ipairs(csv[r]) do
      local cell, kind = row[c] or {}, kinds[c]
      local where = ("row %d column %d (%s, %s)"):format(r, c, header[c], kind)
      local jv = obj[keys[c]]
      if field == "" then
        check(row[c] == nil, where, "not blank")
      elseif kind == "text" and raw and type(jv) == "number" then
        -- raw mode: a value keeps its JSON type (a number in an untyped column)
        check(cell.type == "n" and close_to(jv, cell.value), where, cell.value)
      elseif kind == "text" and raw and type(jv) == "boolean" then
        check(cell.type == "b" and cell.value == jv, where, cell.value)
      elseif kind == "text" then
        check(cell.type == "s" and cell.value == field, where, cell.value)
      elseif kind == "boolean" then
        check(cell.type == "b" and cell.value == (jv == true or jv == "true"), where, cell.value)
      elseif kind == "date" or kind == "datetime" then
        local d, t = reader.date(cell.value or 0)
        check(cell.type == "n" and d == jv:sub(1, 10) and (kind == "date" or #jv <= 10 or t == jv:sub(12, 19))
          and cell.num_format:find("yyyy", 1, true) ~= nil, where, cell.value)
      else
        local got = kind == "percent" and (cell.value or 0) * 100 or cell.value
        local fmt = cell.num_format or ""
        check(cell.type == "n" and close_to(tonumber(jv), got)
          and (kind ~= "percent" or fmt:find("%", 1, true) ~= nil)
          and (kind ~= "currency" or fmt:find("#,##0.00", 1, true) ~= nil),
          where, tostring(jv) .. " vs " .. tostring(got))
      end
    end
    -- nothing beyond the CSV's width
    for c in pairs(row) do check(c <= #csv[r], "row " .. r, "a cell in column " .. c) end
  end
  assert.are.same({}, problems)
  return sheet
end

-- The temporary files (sfreports-*) left in DIR.
local function leftovers() return require("cli_run").leftovers(DIR) end

describe("writers.xlsx", function()
  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new{ instance_url = org.url, access_token = org.token })
    DIR = org.dir .. "/xlsx"
    os.execute("mkdir -p " .. q(DIR))
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  for _, key in ipairs({ "tabular_small", "summary_3", "matrix", "joined", "filtered" }) do
    for _, raw in ipairs({ false, true }) do
      it(("writes %s in %s mode with the CSV and JSON writers' rows, types and values"):format(key,
        raw and "raw" or "label"), function()
        local report = assert(client:run_sync(R[key].id))
        local path = DIR .. "/" .. key .. (raw and "_raw" or "") .. ".xlsx"
        local n = assert(writers.xlsx(report, path, { raw = raw }))
        assert.are.equal(report:row_count(), n)
        assert.is_true((reader.test(path)))
        assert_same_as_writers(report, path, raw)
      end)
    end
  end

  it("bolds and freezes the header, filters the data and sizes the columns from it", function()
    local report = assert(client:run_sync(R.tabular_small.id))
    local path = DIR .. "/view.xlsx"
    assert(writers.xlsx(report, path))
    local sheet = reader.open(path):sheet("Report")
    assert.truthy(sheet.xml:find('<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>', 1, true))
    local ncols = #report:columns()
    local last = string.char(64 + ncols)
    assert.truthy(sheet.xml:find('<autoFilter ref="A1:' .. last .. (report:row_count() + 1) .. '"/>', 1, true),
      sheet.xml:match("<autoFilter[^>]*>"))
    -- widths: the description column (long text) is wider than the boolean one
    local widths = {}
    for min, w in sheet.xml:gmatch('<col min="(%d+)" max="%d+" width="([%d.]+)"') do
      widths[tonumber(min)] = tonumber(w)
    end
    local desc, closed
    for i, c in ipairs(report:columns()) do
      if c.name == "DESCRIPTION" then desc = i elseif c.name == "CLOSED" then closed = i end
    end
    assert.is_true(widths[desc] > widths[closed])
    assert.is_true(widths[desc] <= 61)
  end)

  it("writes text as text, never a formula, cleaned to valid XML and cut at Excel's limit", function()
    local cells = { { value = "=1+1", label = "=1+1" }, { value = "@SUM(A1)" }, { value = "+cmd|' /C calc'!A0" },
      { value = "a\1b\255c" }, { value = string.rep("x", 40000) } }
    local done = false
    local path = DIR .. "/text.xlsx"
    assert(writers.xlsx(function()
      if done then return nil end
      done = true
      return { cells = cells }
    end, path, { raw = true, columns = { "f1", "f2", "f3", "bad", "long" } }))
    local sheet = reader.open(path):sheet(1)
    assert.is_nil(sheet.xml:find("<f>", 1, true))
    local row = sheet.rows[2]
    assert.are.same({ "s", "=1+1", false }, { row[1].type, row[1].value, row[1].formula })
    assert.are.same({ "s", "@SUM(A1)" }, { row[2].type, row[2].value })
    assert.are.same({ "s", "+cmd|' /C calc'!A0" }, { row[3].type, row[3].value })
    assert.are.equal("a\239\191\189b\239\191\189c", row[4].value)
    assert.are.equal(32767, #row[5].value)
  end)

  it("formats each currency amount with its own currency, dates as dates, percents as percents", function()
    local rows = {
      { cells = { { value = { amount = 1.5, currency = "EUR" }, label = "1,50 €" }, { value = "2026-02-03T04:05:06Z" },
        { value = 12.5 }, { value = "true" } } },
      { cells = { { value = { amount = 2, currency = "JPY" } }, { value = "2026-02-03T04:05:06+02:00" },
        { value = "7" }, { value = false } } },
      { cells = { { value = { amount = 3, currency = "CHF" } }, { value = "not a date", label = "soon" },
        { value = sfreports.null, label = "-" }, { value = "maybe" } } },
    }
    local i = 0
    local path = DIR .. "/typed.xlsx"
    assert(writers.xlsx(function() i = i + 1 return rows[i] end, path, { columns = {
      { name = "A", label = "Amount", data_type = "currency" }, { name = "D", label = "When", data_type = "datetime" },
      { name = "P", label = "Pct", data_type = "percent" }, { name = "B", label = "Yes", data_type = "boolean" } } }))
    local s = reader.open(path):sheet(1)
    assert.are.same({ 1.5, 2, 3 }, { s.rows[2][1].value, s.rows[3][1].value, s.rows[4][1].value })
    assert.truthy(s.rows[2][1].num_format:find("\226\130\172", 1, true)) -- €
    assert.truthy(s.rows[3][1].num_format:find("\194\165", 1, true))     -- ¥
    assert.truthy(s.rows[4][1].num_format:find("CHF", 1, true))
    assert.are.same({ "2026-02-03", "04:05:06" }, { reader.date(s.rows[2][2].value) })
    assert.are.same({ "2026-02-03", "02:05:06" }, { reader.date(s.rows[3][2].value) }) -- in UTC
    assert.are.same({ "s", "soon" }, { s.rows[4][2].type, s.rows[4][2].value }) -- the label, not a date
    assert.is_true(close_to(0.125, s.rows[2][3].value))
    assert.is_true(close_to(0.07, s.rows[3][3].value))
    assert.is_nil(s.rows[4][3]) -- null: blank
    assert.are.same({ "b", true }, { s.rows[2][4].type, s.rows[2][4].value })
    assert.are.same({ "b", false }, { s.rows[3][4].type, s.rows[3][4].value })
    assert.are.same({ "s", "maybe" }, { s.rows[4][4].type, s.rows[4][4].value })
  end)

  it("adds the subtotals and grand totals (Totals) and the full matrix grid (Matrix)", function()
    local report = assert(client:run_sync(R.matrix.id))
    local path = DIR .. "/sheets.xlsx"
    assert(writers.xlsx(report, path, { totals = true, grid = true }))
    local book = reader.open(path)
    assert.are.same({ "Report", "Totals", "Matrix" }, { book.sheets[1].name, book.sheets[2].name, book.sheets[3].name })
    local totals = book:sheet("Totals")
    local groups = report:groups()
    assert.are.equal(#groups + 1, totals.last_row)
    local ngroup = #report:grouping_columns()
    local aggs = report:aggregate_columns()
    -- the last entry is the grand total: "Total" on both axes, the grand totals after
    local last = totals.rows[totals.last_row]
    local ndown = #report.metadata.groupingsDown
    assert.are.equal("Total", last[ndown + 1].value)
    assert.are.equal("Total", last[1].value)
    for i, a in ipairs(aggs) do
      assert.are.equal(aggs[i].label, totals.rows[1][ngroup + i].value)
      assert.is_true(close_to(report:total(i).value, last[ngroup + i].value), a.name)
    end
    local grid = report:grid(1)
    local m = book:sheet("Matrix")
    assert.are.equal(#grid.down + 1, m.last_row)
    for i = 1, #grid.down do
      for j = 1, #grid.across do
        local v = grid.values[i][j]
        local cell = m.rows[i + 1][j + 1]
        if v == sfreports.null then assert.is_nil(cell) else assert.is_true(close_to(v, cell.value)) end
      end
    end
  end)

  it("writes every row of a paged run (run_all) and leaves no file when a page fails", function()
    local cols = { columns = { "OPPORTUNITY_ID", "AMOUNT", "CLOSE_DATE" } }
    local paged = assert(client:run_all(R.tabular_5k.id, cols))
    local path = DIR .. "/all.xlsx"
    assert.are.equal(5000, assert(writers.xlsx(paged, path, { raw = true })))
    local again = assert(client:run_all(R.tabular_5k.id, cols))
    local csv = parse_csv(capture(function(src, sink, o) return src:write("csv", sink, o) end, again, { raw = true }))
    local sheet = reader.open(path):sheet(1)
    assert.are.equal(5001, sheet.last_row)
    assert.are.equal(#csv, sheet.last_row)
    local same = 0
    for r = 2, 5001 do
      local amount = sheet.rows[r][2]
      if csv[r][1] == sheet.rows[r][1].value and tonumber(csv[r][2]) == (amount and amount.value) then
        same = same + 1
      end
    end
    assert.are.equal(5000, same)
    org:control("fault", { kind = "server_error", count = 50, path = "A0003MAB%?includeDetails", after = 2 })
    local failing = assert(client:run_all(R.tabular_5k.id, cols))
    local bad = DIR .. "/failed.xlsx"
    local n, err = writers.xlsx(failing, bad)
    assert.is_nil(n)
    assert.are.same({ "api", 500 }, { err.kind, err.status })
    assert.is_nil(io.open(bad, "rb"))
    assert.are.same({}, leftovers())
    org:reset()
  end)

  it("writes to a function or a file handle through a temporary file", function()
    local report = assert(client:run_sync(R.summary_1.id))
    local parts = {}
    assert(writers.xlsx(report, function(s) parts[#parts + 1] = s return true end))
    local path = DIR .. "/sink.xlsx"
    local f = assert(io.open(path, "wb"))
    f:write(table.concat(parts))
    f:close()
    assert.is_true((reader.test(path)))
    assert_same_as_writers(report, path, false)
    local n, err = writers.xlsx(report, function() return nil, "disk full" end)
    assert.is_nil(n)
    assert.are.equal("io", err.kind)
    assert.truthy(err.message:find("disk full", 1, true))
  end)

  it("refuses misuse naming it", function()
    local report = assert(client:run_sync(R.tabular_small.id))
    assert.has_error(function() writers.xlsx(report, DIR .. "/x.xlsx", { colour = true }) end,
      "sfreports.writers: unknown option colour for xlsx")
    assert.has_error(function() writers.xlsx(report, 42) end,
      "sfreports.writers: xlsx writes to a path, a file handle or a function, got number")
    assert.has_error(function() writers.xlsx(function() end, DIR .. "/x.xlsx") end,
      "sfreports.writers: a row iterator needs opts.columns")
    local n, err = writers.xlsx(report, DIR .. "/no/such/dir/x.xlsx")
    assert.is_nil(n)
    assert.are.equal("io", err.kind)
  end)
end)

describe("sfreports.xlsx", function()
  local xlsx = require "sfreports.xlsx"

  it("owns its workbook: discard writes nothing, a closed book refuses work, rows only go down", function()
    local path = os.tmpname()
    os.remove(path)
    local book = assert(xlsx.open(path))
    local sheet = assert(book:sheet("S"))
    assert(sheet:write(3, 0, "x"))
    assert.has_error(function() sheet:write(2, 0, "y") end,
      "sfreports.xlsx: row 2 was written after row 3 (rows must go down)")
    assert.has_error(function() sheet:write(-1, 0, "y") end,
      "sfreports.xlsx: row must be a whole number from 0 to 1048575")
    assert.has_error(function() sheet:write(4, 0, {}) end,
      "sfreports.xlsx: write expects a string, number, boolean or nil, got table")
    assert.has_error(function() xlsx.layout({ "nope" }) end)
    local nilname, why = book:sheet("bad[name]")
    assert.is_nil(nilname)
    assert.truthy(why:find("bad sheet name", 1, true))
    book:discard()
    assert.is_nil(io.open(path, "rb"))
    assert.has_error(function() sheet:write(5, 0, "z") end, "sfreports.xlsx: the workbook of this sheet is closed")
    assert.has_error(function() book:close() end, "sfreports.xlsx: the workbook is closed")
    -- collected without close: nothing written either
    local b2 = assert(xlsx.open(path))
    assert(b2:sheet("S"))
    b2 = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.is_nil(io.open(path, "rb"))
  end)

  it("leaves no temporary file open after a discard or a failed close", function()
    local stat = assert(io.open("/proc/self/stat"))
    local pid = stat:read("*l"):match("^%d+")
    stat:close()
    -- the descriptors open on unlinked files (libxlsxwriter's temporary files are), with
    -- a listing for the message; other specs' pipes and files come and go meanwhile
    local function open_fds()
      collectgarbage()
      local p = io.popen("ls -l /proc/" .. pid .. "/fd | awk 'NR > 1 { print $9, $11, $12 }'")
      local list = {}
      for line in p:lines() do
        if line:find("(deleted)", 1, true) then list[#list + 1] = line end
      end
      p:close()
      return #list, table.concat(list, "; ")
    end
    local never = os.tmpname()
    os.remove(never)
    local before, listed = open_fds()
    for i = 1, 20 do
      local book = assert(xlsx.open(i % 2 == 0 and never or "/nonexistent/dir/x.xlsx"))
      local sheet = assert(book:sheet("S"))
      for r = 0, 50 do assert(sheet:write(r, 0, "row")) end
      if i % 2 == 0 then
        book:discard()
      else
        local ok, err = book:close()
        assert.is_nil(ok)
        assert.truthy(err:find("cannot write the workbook", 1, true))
      end
    end
    local after, now = open_fds()
    assert.are.equal(before, after, "before: " .. listed .. "\nafter: " .. now)
    assert.is_nil(io.open(never, "rb"))
  end)
end)
