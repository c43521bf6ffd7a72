-- sfreports.cli.output: writing a report's rows, or a list of plain records (instances,
-- reports, report types, describe columns), in the format of the command line through
-- sfreports.writers (the "table" format included), and the exit status that says
-- whether the output is complete (3: truncated by Salesforce; 1: a page failed).
local Session = require "sfreports.cli.session"

local type, ipairs, tostring = type, ipairs, tostring
local format = string.format

local EXIT = Session.EXIT

-- Writes rows from `source` (a report, or { columns =, rows_iter = iterator }) in the
-- session's format. Returns the row count, or nil and a message.
function Session:write_rows(source, out, raw)
  local writers = require "sfreports.writers"
  local fmt = self.format
  local wopts = { raw = raw and true or false }
  if fmt == "csv" or fmt == "tsv" then wopts.formula_guard = self.o.formula_guard and true or false end
  local w = writers.new(fmt, out, wopts)
  local ok, err = w:header(source)
  if not ok then return nil, err end
  local iter = type(source.rows) == "function" and source:rows() or source.rows_iter
  ok, err = w:rows(iter)
  if not ok then return nil, err end
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

-- Writes a report's rows; exit 3 (with a warning naming the fix) when it is truncated.
function Session:write_report(report, paged)
  if self.o.groups then return self:write_summary(report) end -- sfreports.cli.lifecycle
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
    if report.truncated and not paged then
      self.stderr:write(format("sfreports: warning: the report was truncated: Salesforce returned %d detail"
        .. " row%s and has more (it returns at most 2,000 per run); add --all to page through every row,"
        .. " or narrow the report with --filter\n", n, n == 1 and "" or "s"))
      return EXIT.TRUNCATED
    end
    return EXIT.OK
  end
  local out, oerr = self:open_output()
  if not out then return self:fail(oerr) end
  local n, err = self:write_rows(report, out, self.o.raw)
  if not n then return self:fail("cannot write the output: " .. tostring(err)) end
  self.rows_written = n
  if paged and (report.error or report.all_data == false) then
    -- a page failed after some rows were written: never let that pass as a complete pull
    -- (and -o FILE is not replaced by the part that arrived)
    return self:fail_err(report.error or "a page was missing",
      format("paging stopped after %d rows, so the output is incomplete", n))
  end
  local ok, cerr = self:close_output()
  if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
  if report.truncated and not paged then
    -- a warning, even with --quiet: the output is incomplete
    self.stderr:write(format("sfreports: warning: the report was truncated: Salesforce returned %d detail"
      .. " row%s and has more (it returns at most 2,000 per run); add --all to page through every row,"
      .. " or narrow the report with --filter\n", n, n == 1 and "" or "s"))
    return EXIT.TRUNCATED
  end
  return EXIT.OK
end

return Session
