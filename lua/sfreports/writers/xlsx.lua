-- sfreports.writers.xlsx: the native .xlsx writer, writers.xlsx(source, dest, opts).
-- Rows are written as they are iterated, through sfreports.xlsx (libxlsxwriter in
-- constant-memory mode): a run_all over 100,000 rows holds one page, not the workbook.
--
--   local n, err = writers.xlsx(report_or_paged, "pipeline.xlsx", { raw = false, totals = true })
--
-- source: a report, a paged report (client:run_all; a page that fails makes the call
-- fail and no file is left), or a row iterator with opts.columns (and
-- opts.grouping_columns), as for the other writers.
-- dest: a path (written to a temporary file next to it and renamed only when the
-- workbook is complete), or a file handle / function sink (the workbook is built in a
-- temporary file, then copied to it).
-- Returns the number of rows written, or nil and an error (kind `io`, or `limit` past
-- Excel's 1,048,575 data rows, or the paged source's error).
--
-- Sheet "Report" (opts.sheet): the CSV contract's columns (a "Block" column for
-- MULTI_BLOCK, grouping columns down then across, detail columns), one row per detail
-- row. Header row bold and frozen, an autofilter over the data, column widths from the
-- longest text (6 to 60 characters). Cells are typed by column data type: int, double
-- (numbers), currency (the amount, with the symbol or ISO code of each cell's own
-- currency as its number format, so a column of mixed currencies stays right),
-- percent (a real percent: 45 becomes 0.45 shown as 45.00%), date / datetime / time
-- (Excel serials; datetimes in UTC), boolean. Other columns are text: the label (label
-- mode, the default) or the value (raw = true), as in CSV; text is never a formula.
-- Null is a blank cell. Grouping columns: labels in label mode, typed values in raw mode.
-- opts.totals = true adds sheet "Totals": one row per fact-map entry (report:groups()),
-- grouping columns ("Total" where a level is summed over) then every aggregate.
-- opts.grid = true (or an aggregate name or index) adds sheet "Matrix": the full grid of
-- that aggregate (report:grid), down groups as rows, across groups as columns.
local json = require "sfreports.json"

local type, ipairs, pairs, tostring, pcall, error, setmetatable = type, ipairs, pairs, tostring, pcall, error,
  setmetatable
local format, match, concat = string.format, string.match, table.concat

local M = {}

local null = json.null
local EMPTY = {}

M.OPTIONS = { raw = true, totals = true, grid = true, sheet = true, tmpdir = true, columns = true,
  grouping_columns = true }

-- kind and number format per Salesforce data type
local KIND = { int = "number", double = "number", number = "number", percent = "percent",
  currency = "currency", date = "date", datetime = "datetime", time = "time", boolean = "boolean" }
local NUM_FORMAT = { int = "0", percent = "0.00%", currency = "#,##0.00", date = "yyyy-mm-dd",
  datetime = "yyyy-mm-dd hh:mm:ss", time = "hh:mm:ss" }

local function io_error(message)
  return require("sfreports.errors").new("io", message, { retryable = false })
end

local function column_list(list)
  local out = {}
  for i, c in ipairs(type(list) == "table" and list or EMPTY) do
    if type(c) == "string" then out[i] = { name = c, label = c }
    elseif type(c) == "table" then
      out[i] = { name = c.name, label = type(c.label) == "string" and c.label or c.name or ("Column " .. i),
        data_type = c.data_type, axis = c.axis }
    else out[i] = { label = "Column " .. i } end
  end
  return out
end

---------------------------------------------------------------------------------------
-- a workbook under construction

local Book = {}
Book.__index = Book

local function new_book(xlsx, path, tmpdir)
  local book, err = xlsx.open(path, { tmpdir = tmpdir })
  if not book then return nil, io_error(err) end
  local self = setmetatable({ xlsx = xlsx, book = book, formats = {} }, Book)
  self.bold = book:format({ bold = true })
  return self
end

function Book:fmt(data_type)
  local nf = NUM_FORMAT[data_type]
  if not nf then return 0 end
  local h = self.formats[nf]
  if not h then
    h = self.book:format({ num_format = nf })
    self.formats[nf] = h
  end
  return h
end

-- A layout for columns: typed by data type (text columns: "raw" or "text" by mode).
function Book:layout(cols, raw, texts_only, default_kind)
  local kinds, fmts = {}, {}
  for i, c in ipairs(cols) do
    local k = not texts_only and (KIND[c.data_type] or default_kind) or nil
    kinds[i] = k or (raw and "raw" or "text")
    fmts[i] = k and self:fmt(c.data_type or (k == "number" and "double")) or 0
  end
  return self.xlsx.layout(kinds, fmts, raw)
end

-- A sheet with its header row written; returns sheet | nil, err.
function Book:sheet(name, labels)
  local sheet, err = self.book:sheet(name)
  if not sheet then return nil, io_error(err) end
  for i, label in ipairs(labels) do
    local ok, werr = sheet:write(0, i - 1, label, self.bold)
    if not ok then return nil, io_error(werr) end
  end
  sheet:freeze(1, 0)
  return sheet
end

local function finish_sheet(sheet, rows, width)
  if width > 0 then sheet:autofilter(0, 0, rows > 0 and rows or 0, width - 1) end
  sheet:fit(6, 60)
end

---------------------------------------------------------------------------------------
-- the sheets

local function check(ok, err)
  if not ok then error({ xlsx_error = io_error(err) }, 0) end
end

-- The rows sheet. Returns the number of rows written.
local function write_rows(b, shape, iter, opts, max_rows)
  local labels = {}
  if shape.blocks then labels[1] = "Block" end
  for _, g in ipairs(shape.gcols) do labels[#labels + 1] = g.label end
  for _, c in ipairs(shape.columns) do labels[#labels + 1] = c.label end
  local sheet, serr = b:sheet(opts.sheet or "Report", labels)
  check(sheet, serr)
  local raw = opts.raw and true or false
  local glayout = b:layout(shape.gcols, raw, not raw)
  local dlayout = b:layout(shape.columns, raw)
  local goff = shape.blocks and 1 or 0
  local doff = goff + #shape.gcols
  local ngroups, ncols = #shape.gcols, #shape.columns
  local r = 0
  for row in iter do
    r = r + 1
    if r > max_rows then
      error({ xlsx_error = require("sfreports.errors").new("limit",
        format("more than %d rows: past the last row of an Excel sheet", max_rows), { retryable = false }) }, 0)
    end
    if shape.blocks then check(sheet:write(r, 0, row.block ~= nil and tostring(row.block) or nil)) end
    if ngroups > 0 then check(sheet:row(r, goff, row.groups or EMPTY, glayout)) end
    local cells = row.data_cells or row.cells or EMPTY
    local slots = row.slots
    if slots then
      local placed = {}
      for i = 1, #cells do
        local j = slots[i]
        if j and j <= ncols then placed[j] = cells[i] end
      end
      cells = placed
    end
    if ncols > 0 then check(sheet:row(r, doff, cells, dlayout)) end
  end
  finish_sheet(sheet, r, #labels)
  return r
end

-- The "Totals" sheet: every fact-map entry with its aggregates.
local function write_totals(b, report, opts)
  if type(report) ~= "table" or type(report.groups) ~= "function" then return end
  local gcols = column_list(report:grouping_columns())
  local aggs = column_list(report:aggregate_columns())
  local blocks = report.format == "MULTI_BLOCK"
  local ndown = 0
  for _, g in ipairs(gcols) do if g.axis ~= "across" then ndown = ndown + 1 end end
  local labels = {}
  if blocks then labels[1] = "Block" end
  for _, g in ipairs(gcols) do labels[#labels + 1] = g.label end
  for _, a in ipairs(aggs) do labels[#labels + 1] = a.label end
  local sheet, serr = b:sheet("Totals", labels)
  check(sheet, serr)
  local raw = opts.raw and true or false
  local glayout = b:layout(gcols, raw, not raw)
  local alayout = b:layout(aggs, raw, false, "number")
  local goff = blocks and 1 or 0
  local r = 0
  for _, e in ipairs(report:groups()) do
    r = r + 1
    local cells = {}
    for _, g in ipairs(e.down or EMPTY) do cells[g.level] = g end
    for _, g in ipairs(e.across or EMPTY) do cells[ndown + g.level] = g end
    local nd, na = #(e.down or EMPTY), #(e.across or EMPTY)
    if nd < ndown then cells[nd + 1] = { value = "Total", label = "Total" } end
    if na < #gcols - ndown then cells[ndown + na + 1] = { value = "Total", label = "Total" } end
    if blocks then check(sheet:write(r, 0, e.block ~= nil and tostring(e.block) or nil)) end
    if #gcols > 0 then check(sheet:row(r, goff, cells, glayout)) end
    if #aggs > 0 then check(sheet:row(r, goff + #gcols, e.aggregates or EMPTY, alayout)) end
  end
  finish_sheet(sheet, r, #labels)
end

local function path_label(groups)
  if #groups == 0 then return "Total" end
  local parts = {}
  for i, g in ipairs(groups) do
    local l = g.label
    if type(l) ~= "string" then l = g.value ~= nil and g.value ~= null and tostring(g.value) or "" end
    parts[i] = l
  end
  return concat(parts, " / ")
end

-- The "Matrix" sheet: one aggregate's full grid.
local function write_grid(b, report, agg)
  if type(report) ~= "table" or type(report.grid) ~= "function" then return end
  if agg == true then agg = 1 end
  local aggs = report:aggregate_columns()
  local col
  for i, a in ipairs(aggs) do
    if i == agg or a.name == agg then col = a end
  end
  if not col then return end
  local grid = report:grid(agg)
  local labels = { col.label }
  for _, a in ipairs(grid.across) do labels[#labels + 1] = path_label(a.groups) end
  local sheet, serr = b:sheet("Matrix", labels)
  check(sheet, serr)
  local vcols = {}
  for j = 1, #grid.across do vcols[j] = { data_type = col.data_type } end
  local vlayout = b:layout(vcols, false, false, "number")
  for i, d in ipairs(grid.down) do
    check(sheet:write(i, 0, path_label(d.groups)))
    local cells = {}
    for j = 1, #grid.across do cells[j] = { value = grid.values[i][j], label = grid.labels[i][j] } end
    check(sheet:row(i, 1, cells, vlayout))
  end
  finish_sheet(sheet, #grid.down, #labels)
end

---------------------------------------------------------------------------------------
-- destinations

local tmpname = require "sfreports.tmpname"

-- Copies the file at path into sink (a function or something with :write).
local function copy_to(path, sink)
  local f, ferr = io.open(path, "rb")
  if not f then return nil, io_error(tostring(ferr)) end
  local write
  if type(sink) == "function" then write = sink else write = function(s) return sink:write(s) end end
  while true do
    local s = f:read(65536)
    if not s then break end
    local ok, werr = write(s)
    if ok == false or (ok == nil and werr ~= nil) then
      f:close()
      return nil, io_error("cannot write the workbook: " .. tostring(werr or "the sink refused a chunk"))
    end
  end
  f:close()
  return true
end

local function shape_of(src, opts)
  if type(src) == "function" then
    if not (opts.columns) then error("sfreports.writers: a row iterator needs opts.columns", 4) end
    return { columns = column_list(opts.columns), gcols = column_list(opts.grouping_columns) }, src, nil
  end
  if type(src) ~= "table" or type(src.rows) ~= "function" or type(src.columns) ~= "function" then
    error("sfreports.writers: expected a report or a row iterator, got " .. type(src), 4)
  end
  local blocks = src.format == "MULTI_BLOCK"
  if not blocks and type(src.blocks) == "function" then blocks = #src:blocks() > 0 end
  local gcols = type(src.grouping_columns) == "function" and src:grouping_columns() or EMPTY
  return { columns = column_list(src:columns()), gcols = column_list(gcols), blocks = blocks }, src:rows(), src
end

-- writers.xlsx(source, dest, opts): see the top of this file.
function M.write(src, dest, opts)
  if opts ~= nil and type(opts) ~= "table" then error("sfreports.writers: opts must be a table", 3) end
  opts = opts or EMPTY
  for k in pairs(opts) do
    if not M.OPTIONS[k] then error("sfreports.writers: unknown option " .. tostring(k) .. " for xlsx", 3) end
  end
  local td = type(dest)
  if td ~= "string" and td ~= "function" and td ~= "userdata" and td ~= "table" then
    error("sfreports.writers: xlsx writes to a path, a file handle or a function, got " .. td, 3)
  end
  local shape, iter, report = shape_of(src, opts)
  local xlsx = require "sfreports.xlsx"
  -- a path is written next to the file it finally names and renamed onto it; a device or
  -- FIFO (/dev/null) is never renamed over: the book is copied into it like into a handle
  local mode, final
  if td == "string" then mode, final = tmpname.plan(dest) end
  local rename_to = mode == "rename" and final or nil
  local target = rename_to and tmpname.next_to(rename_to) or os.tmpname()
  if not target then return nil, io_error("cannot write " .. dest .. ": no temporary file name is free next to it") end
  -- made here first, so that an unwritable folder is a clean error before any row
  local probe, perr = io.open(target, "wb")
  if not probe then
    return nil, io_error("cannot write " .. (td == "string" and dest or "a temporary file") .. ": "
      .. (match(tostring(perr), ": ([^:]+)$") or tostring(perr)))
  end
  probe:close()
  local b, berr = new_book(xlsx, target, opts.tmpdir)
  if not b then os.remove(target) end
  if not b then return nil, berr end
  local ok, n = pcall(function()
    local count = write_rows(b, shape, iter, opts, xlsx.MAX_ROWS - 1)
    if type(src) == "table" and src.error then error({ xlsx_error = src.error }, 0) end
    local whole = report and (report.report or report)
    if opts.totals then write_totals(b, whole, opts) end
    if opts.grid then write_grid(b, whole, opts.grid) end
    return count
  end)
  if not ok then
    b.book:discard()
    os.remove(target)
    if type(n) == "table" and n.xlsx_error then return nil, n.xlsx_error end
    error(n, 0)
  end
  local cok, cerr = b.book:close()
  if not cok then
    os.remove(target)
    return nil, io_error(cerr)
  end
  if rename_to then
    local rok, rerr = os.rename(target, rename_to)
    if not rok then
      os.remove(target)
      return nil, io_error("cannot write " .. dest .. ": " .. tostring(rerr))
    end
  elseif td == "string" then
    local f, ferr = io.open(dest, "wb")
    local cpok, cperr = f ~= nil, io_error("cannot write " .. dest .. ": " .. tostring(ferr))
    if f then
      cpok, cperr = copy_to(target, f)
      f:close()
    end
    os.remove(target)
    if not cpok then return nil, cperr end
  else
    local cpok, cperr = copy_to(target, dest)
    os.remove(target)
    if not cpok then return nil, cperr end
  end
  return n
end

return M
