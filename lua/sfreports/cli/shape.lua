-- sfreports.cli.shape: what the command line adds to the shape of its output and to
-- how a report is named (issue 23, "the first hour"):
--   --no-header, --delimiter C, --bom   the CSV/TSV/table lines (writers' header and
--                                        delimiter options; the BOM written first)
--   --limit N                            the first N rows (rows are cut here, after the
--                                        run: Salesforce's own row limit, --top, needs a sort)
--   --grid[=AGG]                         a summary or matrix report as a grid of one
--                                        aggregate (report:grid): down groups as lines,
--                                        across groups as columns, subtotals and totals
--   a report given by its Lightning (or Classic) URL instead of its id
-- Checked before any request (usage errors, exit status 2). Pure Lua; loads no library.
local argv = require "sfreports.cli.argv"

local type, tostring, tonumber, ipairs, floor = type, tostring, tonumber, ipairs, math.floor
local format, match, concat = string.format, string.match, table.concat
local usage_error = argv.usage_error

local shape = {}

shape.BOM = "\239\187\191"

local DELIMITER_NAMES = { tab = "\t", ["\\t"] = "\t", comma = ",", semicolon = ";", pipe = "|", space = " " }

-- Checks the shape options against the format; sets checked.delimiter, checked.limit,
-- checked.key (a list). Raises usage errors.
function shape.check(o, checked)
  local fmt = checked.format
  if o.delimiter ~= nil then
    local d = DELIMITER_NAMES[o.delimiter] or o.delimiter
    if #d ~= 1 or d == '"' or d == "\r" or d == "\n" or match(d, "[%w]") then
      usage_error(format("--delimiter %q: expected one character (not a letter, digit or quote), e.g."
        .. " \";\" or tab", o.delimiter))
    end
    if fmt ~= "csv" then
      usage_error(format("--delimiter applies to --format csv (the output here is %s)", tostring(fmt)))
    end
    checked.delimiter = d
  end
  if o.no_header and fmt ~= "csv" and fmt ~= "tsv" and fmt ~= "table" then
    usage_error(format("--no-header applies to --format csv, tsv and table (the output here is %s)", tostring(fmt)))
  end
  if o.bom and fmt ~= "csv" and fmt ~= "tsv" then
    usage_error(format("--bom applies to --format csv and tsv (the output here is %s)", tostring(fmt)))
  end
  if o.limit ~= nil then
    local n = tonumber(o.limit)
    if not n or n < 1 or n ~= floor(n) or n > 1e15 then
      usage_error(format("--limit %q: expected a whole number of rows, 1 or more, e.g. 100", o.limit))
    end
    checked.limit = n
  end
  if o.grid ~= nil then
    if o.groups then usage_error("--grid and --groups (--subtotals) are two views of the aggregates: give one") end
    if fmt == "xlsx" then usage_error("--grid writes csv, tsv, json, jsonl or table, not xlsx") end
    if o.grid == "" then usage_error("--grid=AGG needs an aggregate (e.g. --grid=s!AMOUNT), or give --grid alone") end
  end
  if o.key ~= nil then
    if not o.all then usage_error("--key COLUMN chooses how --all splits the report: it needs --all") end
    local keys = {}
    for item in (o.key .. ","):gmatch("([^,]*),") do
      item = match(item, "^%s*(.-)%s*$")
      if item == "" then usage_error(format("--key %q: an empty column name in the comma list", o.key)) end
      keys[#keys + 1] = item
    end
    checked.key = #keys == 1 and keys[1] or keys
  end
  if o.all and (o.sort or o.top) then
    usage_error("--all returns the rows in the order of its paging key, so --sort and --top do not"
      .. " apply; choose the key with --key COLUMN")
  end
end

-- A report id from what the user typed: the id itself, or a report's URL:
--   https://DOMAIN.lightning.force.com/lightning/r/Report/00O.../view  (Lightning)
--   https://DOMAIN.my.salesforce.com/00O...                           (Classic)
-- Anything else that looks like a URL is a usage error.
function shape.report_id(text)
  if type(text) ~= "string" or not match(text, "^[Hh][Tt][Tt][Pp][Ss]?://") then return text end
  local path = match(text, "^%a+://[^/?#]+(/[^?#]*)") or ""
  local id = match(path, "^/lightning/r/[Rr]eport/(%w+)") or match(path, "^/lightning/r/(00O%w+)")
    or match(path, "^/(00O%w+)/?$")
  if not id then
    usage_error(format("%q holds no report id: expected a report's URL such as"
      .. " https://DOMAIN.lightning.force.com/lightning/r/Report/00O.../view, or the id itself", text))
  end
  return id
end

---------------------------------------------------------------------------------------
-- --limit: an iterator that stops after n rows

-- iter cut after n rows; the second result tells whether the cut happened (a row was
-- left unread) -- checked lazily: the (n+1)th row is never fetched.
function shape.limited(iter, n)
  local count = 0
  local state = { reached = false }
  return function()
    if count >= n then
      state.reached = true
      return nil
    end
    local row = iter()
    if row ~= nil then count = count + 1 end
    return row
  end, state
end

---------------------------------------------------------------------------------------
-- --grid

-- The index of aggregate `want` (API name, label, or 1-based position) among aggs.
local function aggregate_index(aggs, want)
  if want == true or want == nil then return 1 end
  local n = tonumber(want)
  if n and aggs[n] then return n end
  for i, a in ipairs(aggs) do
    if a.name == want or a.label == want or (type(a.label) == "string" and a.label:lower() == want:lower()) then
      return i
    end
  end
  return nil
end

local function path_label(groups)
  local parts = {}
  for i, g in ipairs(groups) do
    local l = type(g) == "table" and (g.label ~= nil and g.label or g.value) or g
    parts[i] = (type(l) == "string" or type(l) == "number") and tostring(l) or ""
  end
  return concat(parts, " / ")
end

-- The grid of one aggregate as a writers' source: grouping columns are the down levels,
-- one column per across group (its path, "A / B") ending with "Total"; one line per down
-- group (subtotals included, their lower levels empty) and the grand total last.
-- Returns the source and the aggregate's column, or nil and a message.
function shape.grid_source(report, want)
  if report.format ~= "SUMMARY" and report.format ~= "MATRIX" then
    return nil, format("--grid needs a summary or matrix report; this one is %s", tostring(report.format))
  end
  local aggs = report:aggregate_columns()
  if #aggs == 0 then return nil, "--grid: the report has no aggregate" end
  local k = aggregate_index(aggs, want)
  if not k then
    local names = {}
    for i, a in ipairs(aggs) do names[i] = format("%s (%s)", tostring(a.name), tostring(a.label)) end
    return nil, format("--grid=%s: the report has no such aggregate; it has %s", tostring(want), concat(names, ", "))
  end
  local agg = aggs[k]
  local g = report:grid(k)
  local down_cols = {}
  for _, c in ipairs(report:grouping_columns()) do
    if c.axis == "down" then down_cols[#down_cols + 1] = { name = c.name, label = c.label } end
  end
  local columns = {}
  for j, item in ipairs(g.across) do
    local label = item.key == "T" and "Total" or path_label(item.groups)
    columns[j] = { name = label, label = label, data_type = agg.data_type }
  end
  local i = 0
  return {
    columns = columns, grouping_columns = down_cols,
    rows_iter = function()
      i = i + 1
      local item = g.down[i]
      if item == nil then return nil end
      local cells = {}
      for j = 1, #columns do cells[j] = { value = g.values[i][j], label = g.labels[i][j] } end
      return { groups = item.groups, cells = cells }
    end,
  }, agg, aggs
end

return shape
