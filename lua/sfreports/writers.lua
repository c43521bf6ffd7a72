-- sfreports.writers: streaming CSV / TSV / JSON / JSON Lines writers for report rows.
--
-- Every writer formats and writes one row at a time, as rows are iterated: the output is
-- never assembled in memory. Pure Lua (no C core, no client).
--
--   local writers = require "sfreports.writers"
--   local n, err = writers.csv(report, io.stdout)                 -- label mode
--   local n, err = writers.tsv(report, file, { raw = true })      -- values
--   local n, err = writers.json(report, function(chunk) ... end)
--   local n, err = writers.write("jsonl", report, sink, opts)
--
--   -- several pages (or any row source) into one output:
--   local w = writers.new("csv", sink, opts)
--   assert(w:header(first_page))           -- a report, or { columns = ..., grouping_columns = ... }
--   for _, page in ipairs(pages) do for row in page:rows() do assert(w:row(row)) end end
--   local n, err = w:finish()
--
-- API:
--   writers.new(format, sink [, opts]) -> writer   format "csv" | "tsv" | "json" | "jsonl"
--                                                  (alias "ndjson") | "table"
--   writer:header(source) -> true | nil, err       fixes the shape, writes the header
--   writer:row(row)       -> true | nil, err
--   writer:rows(iterator) -> rows written | nil, err
--   writer:finish()       -> rows written in all | nil, err   (writer.count: so far)
--   writers.write(format, source, sink [, opts]) -> rows written | nil, err
--   writers.csv / tsv / json / jsonl / ndjson / table(source, sink [, opts]) -> same
--   writers.format_number(n), writers.value_text(v), writers.json_string(s): the
--   formatting the writers use, for callers that format single values the same way.
-- Modules: sfreports.writers.text (values to text, escaping), .delimited (CSV, TSV),
-- .json_rows (JSON, JSON Lines), .aligned (table). When header() fixes the shape, each
-- format chooses one formatter per column; the row loop only calls them.
-- Misuse (unknown format or option, a sink without :write, row() before header() or
-- after finish(), header() or finish() twice) raises an error string.
--
-- Sources. `writers.<format>(source, sink, opts)` takes a report object (anything with
-- :columns(), :grouping_columns() and :rows()), or a row iterator function together with
-- `opts.columns` (and optionally `opts.grouping_columns`). A column description is a
-- table { name =, label = } or a plain string (used as both). A row is a table with
-- `data_cells` (raw dataCells) or `cells` (typed cells), each cell a table { value, label },
-- and optionally `groups` (array of { value, label }, aligned with the grouping columns),
-- `block` and `slots` (MULTI_BLOCK, see sfreports.report). Rows are written at the
-- header's width: missing cells are empty, cells beyond the header are not written. A
-- cell that is not a table (a bare number, string or boolean; never sent by Salesforce)
-- is written as its value: no data makes a writer raise.
--
-- Sinks. A function(chunk) or anything with a :write(chunk) method (file handles). A
-- write that fails (returns nil/false plus an error) stops the writer: the call returns
-- nil and that error, and every later call returns the same.
--
-- Options:
--   raw = false          label mode (default): each cell's display label; raw = true: values
--   formula_guard = false  CSV/TSV only: a field starting with "=", "+", "-", "@", TAB or CR
--                        gets a leading "'" (spreadsheet formula injection). Fields written
--                        from numbers (raw mode) are never prefixed.
--   header = true        CSV/TSV: write the header line (false: columns still fix the shape)
--   delimiter = ","      CSV only: the field separator (one character other than '"', CR
--                        and LF, e.g. ";" for spreadsheets in comma-decimal locales); a
--                        field holding it is quoted
--   columns, grouping_columns   the shape, when the source is an iterator
--
-- The CSV/TSV shape (a contract): one header line of grouping column labels (down levels
-- then across levels; SUMMARY and MATRIX) followed by the detail column labels; then one
-- line per detail row in report:rows() order, grouping fields first. A MULTI_BLOCK report
-- gets a leading "Block" column holding each row's block id.
--   label mode: a cell's label; a grouping's label.
--   raw mode:   strings as is; numbers as the shortest decimal that reads back to the same
--               double (integers without a fraction, e.g. 350000000, 0.1, 16000.01);
--               currency as its amount; booleans as true/false; dates as given; other
--               objects as compact JSON. Groupings likewise from their values.
--   JSON null (a cell or grouping value, or the amount of a currency value; the report
--   types all three as null) is an empty field in both modes, whatever the label ("-")
--   says. A label that is absent, null or not a string falls back to the value (a
--   number label, never sent by Salesforce, is written as Lua formats it).
-- CSV follows RFC 4180: a field containing "," '"' CR or LF is quoted and '"' doubled;
-- lines end with LF. Fields are UTF-8 as received; no BOM. A shape without any field (no
-- grouping and no detail column) writes nothing at all: an empty file, not empty lines.
-- TSV: fields are separated by TAB, lines end with LF; a field never contains a raw TAB,
-- CR or LF: they are escaped as the two characters \t, \r, \n, and a backslash as \\
-- (the "linear TSV" convention; unescape in one pass to get the original text back).
--
-- JSON: an array of row objects, one per line: "[\n{...},\n{...}\n]\n" ("[]\n" when
-- empty). JSON Lines: one object per line. An object holds the grouping fields then the
-- detail fields, keyed by column API name (the label when a column has no name; a key
-- that repeats gets "_2", "_3", ... appended; MULTI_BLOCK rows start with "block").
-- Label mode: labels as JSON strings. Raw mode: typed values (numbers as the shortest
-- round-trip decimal, booleans, currency amounts, strings, other objects as JSON). A
-- null (as in CSV) is null in both modes. formula_guard does not apply to JSON.
--
-- Table: the TSV fields (TAB, CR, LF shown as \t, \r, \n) aligned in columns two spaces
-- apart, a rule of "-" under the header, numeric columns (int, double, currency, percent)
-- right-aligned, East Asian wide characters counted as two cells. It buffers every row
-- until finish() (the widths need the last row); the other formats stream.
local text = require "sfreports.writers.text"
local delimited = require "sfreports.writers.delimited"
-- The JSON and table formats' modules are loaded on first use, so that a CSV run does not
-- compile them.
local function json_rows() return require "sfreports.writers.json_rows" end
local function aligned() return require "sfreports.writers.aligned" end

local type, tostring, setmetatable, error, pcall, pairs = type, tostring, setmetatable, error, pcall, pairs

local writers = {}

-- the formatting the writers use, for callers that format single values the same way
writers.format_number = text.format_number
writers.value_text = text.value_text
writers.json_string = text.json_string

local EMPTY = {}

---------------------------------------------------------------------------------------
-- sources and sinks

local function make_write(sink)
  if type(sink) == "function" then
    return function(chunk)
      local ok, err = sink(chunk)
      if ok == false or (ok == nil and err ~= nil) then return nil, err or "sink failed" end
      return true
    end
  end
  local has_write = false
  if type(sink) == "table" or type(sink) == "userdata" then
    -- a userdata without a metatable (or one whose __index raises) has no :write
    local ok, m = pcall(function() return sink.write end)
    has_write = ok and m ~= nil
  end
  if not has_write then
    error("sfreports.writers: sink must be a function or have a :write method, got " .. type(sink), 3)
  end
  return function(chunk)
    local ok, err = sink:write(chunk)
    if ok == false or (ok == nil and err ~= nil) then return nil, err or "sink failed" end
    return true
  end
end

local function column_list(list)
  local out = {}
  if type(list) ~= "table" then return out end
  for i = 1, #list do
    local c = list[i]
    if type(c) == "string" then
      out[i] = { name = c, label = c }
    elseif type(c) == "table" then
      local label = c.label
      if type(label) ~= "string" then label = c.name end
      out[i] = { name = type(c.name) == "string" and c.name or nil,
                 label = type(label) == "string" and label or ("Column " .. i),
                 data_type = type(c.data_type) == "string" and c.data_type or nil }
    else
      out[i] = { label = "Column " .. i }
    end
  end
  return out
end

-- { columns, grouping_columns, blocks } from a report or a plain description.
local function shape_of(src)
  if type(src) ~= "table" then
    error("sfreports.writers: header needs a report or { columns = ... }, got " .. type(src), 3)
  end
  if type(src.columns) == "function" then
    local gcols = type(src.grouping_columns) == "function" and src:grouping_columns() or EMPTY
    local blocks = src.format == "MULTI_BLOCK"
    if not blocks and type(src.blocks) == "function" then blocks = #src:blocks() > 0 end
    return column_list(src:columns()), column_list(gcols), blocks
  end
  return column_list(src.columns), column_list(src.grouping_columns), src.blocks == true
end

-- The header labels: "Block" for MULTI_BLOCK, grouping columns, detail columns.
local function header_labels(columns, gcols, blocks)
  local labels = {}
  if blocks then labels[1] = "Block" end
  for i = 1, #gcols do labels[#labels + 1] = gcols[i].label end
  for i = 1, #columns do labels[#labels + 1] = columns[i].label end
  return labels
end

---------------------------------------------------------------------------------------
-- formats: header(writer, columns, gcols, blocks) sets writer.format_row and returns the
-- text that comes before the rows; finish(writer) returns the text after them (or nil,
-- err when it writes itself).

local FORMATS = {}

local function delimited_format(sep)
  return {
    header = function(w, columns, gcols, blocks)
      -- CSV with another delimiter (opts.delimiter) quotes fields holding that one instead
      local layout = delimited.layout(sep == "," and w.delimiter or sep, w.raw, w.guard, columns, gcols, blocks,
        sep == ",")
      w.format_row = layout.line
      if w.header_line then return layout.header(header_labels(columns, gcols, blocks)) end
      return nil
    end,
  }
end
FORMATS.csv = delimited_format(",")
FORMATS.tsv = delimited_format("\t")

local function json_format(array)
  return {
    header = function(w, columns, gcols, blocks)
      w.format_row = json_rows().formatter(w.raw, columns, gcols, blocks, array)
      return array and "[" or nil
    end,
    finish = function(w)
      if array then return w.count == 0 and "]\n" or "\n]\n" end
      return nil
    end,
  }
end
FORMATS.json = json_format(true)
FORMATS.jsonl = json_format(false)
FORMATS.ndjson = FORMATS.jsonl

-- table: rows are kept as TSV fields until finish() knows the widths
FORMATS.table = {
  header = function(w, columns, gcols, blocks)
    local layout = delimited.layout("\t", w.raw, w.guard, columns, gcols, blocks)
    local rows = {}
    if w.header_line then rows[1] = layout.header_fields(header_labels(columns, gcols, blocks)) end
    w.table_rows = rows
    w.numeric = aligned().numeric_fields(columns, gcols, blocks)
    local fields = layout.fields
    w.format_row = function(row)
      rows[#rows + 1] = fields(row)
      return ""
    end
    return nil
  end,
  finish = function(w)
    local ok, err = aligned().write(w.table_rows, w.numeric, w.header_line, w.write)
    w.table_rows = nil
    if not ok then return nil, err end
    return nil
  end,
}

---------------------------------------------------------------------------------------
-- the writer object

-- opts.delimiter (CSV only): one character other than a quote, CR or LF; "," by default.
local function csv_delimiter(d)
  if d == nil then return "," end
  if type(d) ~= "string" or #d ~= 1 or d == '"' or d == "\r" or d == "\n" then
    error("sfreports.writers: delimiter must be one character other than '\"', CR and LF", 4)
  end
  return d
end

local OPTIONS = { raw = true, formula_guard = true, header = true, columns = true, grouping_columns = true,
  delimiter = true }

local Writer = {}
Writer.__index = Writer

-- Creates a writer: format "csv" | "tsv" | "json" | "jsonl" (alias "ndjson") | "table".
function writers.new(fmt, sink, opts)
  local format = FORMATS[fmt]
  if not format then error("sfreports.writers: unknown format " .. tostring(fmt), 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("sfreports.writers: opts must be a table, got " .. type(opts), 2)
  end
  opts = opts or EMPTY
  for k in pairs(opts) do
    if not OPTIONS[k] then error("sfreports.writers: unknown option " .. tostring(k), 2) end
  end
  return setmetatable({
    kind = fmt == "ndjson" and "jsonl" or fmt, format = format, write = make_write(sink),
    raw = opts.raw and true or false,
    guard = opts.formula_guard and true or false, header_line = opts.header ~= false,
    delimiter = csv_delimiter(opts.delimiter),
    count = 0, state = "new",
  }, Writer)
end

local function fail(self, err)
  self.err = err
  self.state = "failed"
  return nil, err
end

-- Writes a chunk unless it is empty (a shape without fields writes nothing).
local function put(self, chunk)
  if chunk == nil or chunk == "" then return true end
  local ok, err = self.write(chunk)
  if not ok then return fail(self, err) end
  return true
end

-- Fixes the shape from a report or { columns =, grouping_columns = [, blocks = true] }
-- and writes what comes before the rows. Returns true, or nil and the sink's error.
function Writer:header(src)
  if self.state == "failed" then return nil, self.err end
  if self.state ~= "new" then error("sfreports.writers: header() called twice", 2) end
  local columns, gcols, blocks = shape_of(src)
  self.columns, self.grouping_columns, self.blocks = columns, gcols, blocks
  self.state = "rows"
  return put(self, self.format.header(self, columns, gcols, blocks))
end

local function check_rows_state(self, what)
  local state = self.state
  if state == "rows" then return true end
  if state == "failed" then return nil, self.err end
  error("sfreports.writers: " .. what .. " " .. (state == "new" and "before header()" or "after finish()"), 3)
end

-- Formats and writes one row. Returns true, or nil and the sink's error.
function Writer:row(row)
  local ok, err
  if self.state ~= "rows" then
    ok, err = check_rows_state(self, "row()")
    if not ok then return nil, err end
  end
  local line = self.format_row(row)
  if line ~= "" then
    ok, err = self.write(line)
    if not ok then return fail(self, err) end
  end
  self.count = self.count + 1
  return true
end

-- Writes every row of an iterator. Returns the number written, or nil and an error.
function Writer:rows(iter, state, init)
  local ok, err = check_rows_state(self, "rows()")
  if not ok then return nil, err end
  local format_row, write = self.format_row, self.write
  local n = 0
  for row in iter, state, init do
    local line = format_row(row)
    if line ~= "" then
      ok, err = write(line)
      if not ok then
        self.count = self.count + n
        return fail(self, err)
      end
    end
    n = n + 1
  end
  self.count = self.count + n
  return n
end

-- Writes what comes after the rows. Returns the number of rows written, or nil, err.
function Writer:finish()
  local state = self.state
  if state == "failed" then return nil, self.err end
  if state == "done" then error("sfreports.writers: finish() called twice", 2) end
  if state == "new" then error("sfreports.writers: finish() before header()", 2) end
  self.state = "done"
  local finish = self.format.finish
  if finish then
    local chunk, err = finish(self)
    if chunk == nil and err ~= nil then return fail(self, err) end
    local ok, perr = put(self, chunk)
    if not ok then return nil, perr end
  end
  return self.count
end

-- Writes a whole source (a report, or an iterator with opts.columns) in one format.
-- Returns the number of rows written, or nil and the sink's error.
function writers.write(fmt, src, sink, opts)
  local w = writers.new(fmt, sink, opts)
  local iter
  if type(src) == "function" then
    if not (opts and opts.columns) then
      error("sfreports.writers: a row iterator needs opts.columns", 2)
    end
    iter = src
    src = { columns = opts.columns, grouping_columns = opts.grouping_columns }
  elseif type(src) == "table" and type(src.rows) == "function" then
    iter = src:rows()
  else
    error("sfreports.writers: expected a report or a row iterator, got " .. type(src), 2)
  end
  local ok, err = w:header(src)
  if not ok then return nil, err end
  ok, err = w:rows(iter)
  if not ok then return nil, err end
  return w:finish()
end

for name in pairs(FORMATS) do
  writers[name] = function(src, sink, opts) return writers.write(name, src, sink, opts) end
end

-- The native .xlsx writer (sfreports.writers.xlsx, over the C module sfreports.xlsx and
-- libxlsxwriter), loaded on first use: writers.xlsx(report_or_paged, path_or_sink, opts).
function writers.xlsx(src, dest, opts)
  return require("sfreports.writers.xlsx").write(src, dest, opts)
end

return writers
