-- sfreports.cli.output: writing a report's rows, or a list of plain records (instances,
-- reports, report types, describe columns), in the format of the command line through
-- sfreports.writers (the "table" format included), and the exit status that says
-- whether the output is complete (3: truncated by Salesforce; 1: a page failed).
local Session = require "sfreports.cli.session"

local type, ipairs, tostring = type, ipairs, tostring
local format = string.format

local EXIT = Session.EXIT

-- The client run options the "change" options of the command line ask for; {} without
-- any, and then sfreports.cli.syntax (which parses them) is not loaded at all.
function Session.run_options(o)
  if not require("sfreports.cli.argv").changes(o) then return {} end
  return require("sfreports.cli.syntax").run_options(o)
end

-- --format xlsx needs a file or a pipe: checked before any request.
function Session:check_output()
  if self.format == "xlsx" then self:check_binary_output() end
end

-- Writes rows from `source` (a report, or { columns =, rows_iter = iterator }) in the
-- session's format. Returns the row count, or nil and a message.
-- --no-header, --delimiter, --bom and --limit apply (sfreports.cli.shape); self.limit_reached
-- tells whether --limit left rows unwritten.
function Session:write_rows(source, out, raw)
  local writers = require "sfreports.writers"
  local fmt, o, c = self.format, self.o, self.checked or {}
  local wopts = { raw = raw and true or false }
  if fmt == "csv" or fmt == "tsv" then wopts.formula_guard = o.formula_guard and true or false end
  if o.no_header then wopts.header = false end
  if c.delimiter then wopts.delimiter = c.delimiter end
  if o.bom then
    local ok, err = out:write(require("sfreports.cli.shape").BOM)
    if not ok then return nil, err end
  end
  local w = writers.new(fmt, out, wopts)
  local ok, err = w:header(source)
  if not ok then return nil, err end
  local iter = type(source.rows) == "function" and source:rows() or source.rows_iter
  local cut
  local on_row = self.on_row
  if on_row then
    -- the progress of --all (sfreports.cli.commands): checked after each row
    local inner = iter
    iter = function()
      local row = inner()
      on_row(false)
      return row
    end
  end
  if c.limit then iter, cut = require("sfreports.cli.shape").limited(iter, c.limit) end
  ok, err = w:rows(iter)
  if not ok then return nil, err end
  if cut then self.limit_reached = cut.reached end
  return w:finish()
end

-- A plain value as a cell: strings, numbers and booleans; anything else is empty.
local function cell(v)
  local tv = type(v)
  if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
    return { value = require("sfreports.json").null }
  end
  return { value = v, label = tostring(v) }
end

-- Writes plain records: fields = { {name =, [data_type =]} ... }, records = list of maps.
function Session:write_records(fields, records)
  local out, oerr = self:open_output()
  if not out then return self:fail(oerr) end
  local columns = {}
  for i, f in ipairs(fields) do columns[i] = { name = f.name, label = f.name, data_type = f.data_type } end
  local i = 0
  local source = {
    columns = columns,
    rows_iter = function()
      i = i + 1
      local r = records[i]
      if r == nil then return nil end
      local cells = {}
      for j, f in ipairs(fields) do cells[j] = cell(r[f.name]) end
      return { cells = cells }
    end,
  }
  local n, err = self:write_rows(source, out, true)
  if not n then return self:fail("cannot write the output: " .. tostring(err)) end
  local ok, cerr = self:close_output()
  if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
  return EXIT.OK
end

-- The workbook of --format xlsx (sfreports.writers.xlsx): to -o FILE's temporary file
-- by name (the writer makes and renames its own, then close_output renames that over
-- FILE), or to standard output (-o -, checked not to be a terminal). Returns rows | nil, err.
function Session:write_xlsx(report)
  local writers = require "sfreports.writers"
  local wopts = { raw = self.o.raw and true or false }
  if self.o.output == "-" then return writers.xlsx(report, self.stdout, wopts) end
  local ok, err = self:reserve_output()
  if not ok then return nil, err end
  self._file:close() -- the writer writes the temporary file by its name
  self._file = nil
  return writers.xlsx(report, self._tmp, wopts)
end

-- "--groups": the report's aggregates, one line per group, subtotal and grand total
-- (sfreports.summary). The aggregates cover every row even when the detail rows were cut
-- at 2,000, so a truncated report is not exit status 3 here; with --all the totals are
-- the first run's (they cover every row).
function Session:write_summary(report)
  local model = type(report.report) == "table" and report.report or report
  local out, oerr = self:open_output()
  if not out then return self:fail(oerr) end
  return self:write_source(require("sfreports.summary").source(model), out)
end

-- Writes a row source (aggregates, a grid) to the opened output: EXIT.OK, or a failure.
function Session:write_source(src, out)
  local n, err = self:write_rows(src, out, self.o.raw)
  if not n then return self:fail("cannot write the output: " .. tostring(err)) end
  local ok, cerr = self:close_output()
  if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
  return EXIT.OK
end

-- The warning for a truncated single run (even with --quiet: the output is incomplete).
function Session:warn_truncated(n)
  self.stderr:write(format("sfreports: warning: the report was truncated: Salesforce returned %d detail"
    .. " row%s and has more (it returns at most 2,000 per run); add --all to page through every row,"
    .. " or narrow the report with --filter\n", n, n == 1 and "" or "s"))
  return EXIT.TRUNCATED
end

-- Writes a report's rows; exit 3 (with a warning naming the fix) when it is truncated.
function Session:write_report(report, paged)
  if self.o.groups then return self:write_summary(report) end
  if self.o.grid then return self:write_grid(report) end
  if self.format == "xlsx" then
    local n, err = self:write_xlsx(report)
    if not n then
      if paged and report.error then
        return self:fail_err(err, "paging stopped, so no workbook was written")
      end
      return self:fail_err(err, "cannot write the workbook")
    end
    local ok, cerr = self:close_output()
    if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
    if report.truncated and not paged then return self:warn_truncated(n) end
    return EXIT.OK
  end
  local out, oerr = self:open_output()
  if not out then return self:fail(oerr) end
  local n, err = self:write_rows(report, out, self.o.raw)
  if not n then return self:fail("cannot write the output: " .. tostring(err)) end
  self.rows_written = n
  if self.limit_reached then
    -- --limit N: the first N rows were all that was asked for (paging stopped there)
    local ok, cerr = self:close_output()
    if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
    return EXIT.OK
  end
  if paged and (report.error or report.all_data == false) then
    -- a page failed after some rows were written: never let that pass as a complete pull
    -- (and -o FILE is not replaced by the part that arrived)
    return self:fail_err(report.error or "a page was missing",
      format("paging stopped after %d rows, so the output is incomplete", n))
  end
  local ok, cerr = self:close_output()
  if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
  if report.truncated and not paged then return self:warn_truncated(n) end
  return EXIT.OK
end

-- --grid[=AGG]: one aggregate of a summary or matrix report as a grid (sfreports.cli.shape).
function Session:write_grid(report)
  local model = type(report.report) == "table" and report.report or report
  local src, agg, aggs = require("sfreports.cli.shape").grid_source(model, self.o.grid)
  if not src then return self:fail(agg) end
  if self.o.grid == true and #aggs > 1 then
    local names = {}
    for i = 2, #aggs do names[#names + 1] = tostring(aggs[i].name) end
    self:note(format("the grid of %s (%s); the others: --grid=%s", tostring(agg.label), tostring(agg.name),
      table.concat(names, ", --grid=")))
  end
  local out, oerr = self:open_output()
  if not out then return self:fail(oerr) end
  return self:write_source(src, out)
end

return Session
