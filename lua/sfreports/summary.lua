-- sfreports.summary: a report's aggregates as rows for the writers: one row per fact-map
-- entry (every group, subtotal and the grand total, in report:groups() order), holding the
-- entry's groups (down levels, then across levels) and one field per aggregate, headed by
-- the aggregate's label ("Sum of Amount", "Record Count"). Pure Lua over the report model.
--
--   local summary = require "sfreports.summary"
--   summary.write("csv", report, io.stdout)          -- rows written | nil, err
--   local w = writers.new("json", sink); w:header(summary.source(report)) ...
--
-- CSV shape: grouping column labels, then aggregate labels; a subtotal leaves the levels
-- below it empty and the grand total leaves every grouping field empty (in JSON they are
-- null; `raw = true` writes values, as for detail rows). A MULTI_BLOCK report gets the
-- writers' leading "Block" column.
local writers = require "sfreports.writers"

local type, ipairs, error = type, ipairs, error

local summary = {}

-- { columns, grouping_columns, blocks, rows_iter } for writer:header() and a row loop.
function summary.source(report)
  if type(report) ~= "table" or type(report.groups) ~= "function" or type(report.aggregate_columns) ~= "function" then
    error("sfreports.summary: expected a report object, got " .. type(report), 2)
  end
  local columns = {}
  for i, a in ipairs(report:aggregate_columns()) do
    columns[i] = { name = a.name, label = a.label, data_type = a.data_type }
  end
  local entries = report:groups()
  local i = 0
  return {
    columns = columns,
    grouping_columns = report:grouping_columns(),
    blocks = report.format == "MULTI_BLOCK",
    rows_iter = function()
      i = i + 1
      local e = entries[i]
      if e == nil then return nil end
      local cells = {}
      for j = 1, #columns do cells[j] = e.aggregates[j] end
      return { groups = e.groups, cells = cells, block = e.block, key = e.key }
    end,
  }
end

-- Writes the summary rows of a report in one writer format. Returns the number of rows,
-- or nil and the sink's error. opts: the writers' options (raw, formula_guard, header).
function summary.write(fmt, report, sink, opts)
  local src = summary.source(report)
  local w = writers.new(fmt, sink, opts)
  local ok, err = w:header(src)
  if not ok then return nil, err end
  ok, err = w:rows(src.rows_iter)
  if not ok then return nil, err end
  return w:finish()
end

return summary
