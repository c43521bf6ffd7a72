-- sfreports.cli: the `sfreports` command (bin/sfreports is a launcher for cli.main).
--
--   local cli = require "sfreports.cli"
--   os.exit(cli.main(arg, os.getenv, { stdout = io.stdout, stderr = io.stderr }))
--
-- cli.main(argv, env, io_streams) -> exit status
--   argv        the arguments after the program name
--   env         a getenv-like function, or a table of variables (default os.getenv)
--   io_streams  { stdout =, stderr =, stdin = } (default io.*); optional `stderr_tty`
--               (boolean: is stderr a terminal; detected when nil and stderr is io.stderr),
--               `sleep` (seconds) and `clock` (monotonic seconds) for the async wait loop.
-- Exit status: 0 success, 1 failure, 2 usage error, 3 rows written from a truncated report.
--
-- Everything the user types is checked here before any request, so that a typo costs no
-- API call and gets exit status 2; what only the org can judge (an unknown column, an
-- operator a column does not offer) comes back from the library as a failure (status 1).
-- The library (and its C core) is loaded lazily: `--help` works without a build.
local type, ipairs, pairs, tostring, tonumber, pcall = type, ipairs, pairs, tostring, tonumber, pcall
local error, setmetatable, getmetatable, rawget = error, setmetatable, getmetatable, rawget
local format, find, match, sub, gsub, lower, upper, rep, byte =
  string.format, string.find, string.match, string.sub, string.gsub, string.lower, string.upper,
  string.rep, string.byte
local concat, floor = table.concat, math.floor

local cli = {}

cli.EXIT = { OK = 0, FAILURE = 1, USAGE = 2, TRUNCATED = 3 }
local EXIT = cli.EXIT

cli.USAGE = "usage: sfreports COMMAND [ARGUMENTS] [OPTIONS]  (sfreports --help; sfreports help COMMAND)"

---------------------------------------------------------------------------------------
-- help texts

local MAIN_HELP = [[
sfreports: run Salesforce reports from the command line (Reports and Dashboards REST API).

usage: sfreports COMMAND [ARGUMENTS] [OPTIONS]

Commands:
  run REPORT_ID                 run a report and write its rows (CSV unless --format)
  describe REPORT_ID            the report's metadata as JSON (--format table: its columns)
  instances REPORT_ID           the report's asynchronous runs
  fetch REPORT_ID INSTANCE_ID   write the rows of an asynchronous run
  delete REPORT_ID INSTANCE_ID  delete an asynchronous run
  list                          recently viewed reports
  query METADATA.json           run report metadata without saving a report (- reads stdin)
  types                         report types, by category
  help [COMMAND]                this text, or a command's options and examples

Credentials:
  SF_INSTANCE_URL and SF_ACCESS_TOKEN (and optionally SF_API_VERSION) from the environment,
  or --org ALIAS to use a login of the Salesforce CLI (`sf org login web -a ALIAS`).
  An access token is never accepted on the command line (it would show in `ps` and in
  shell history).

Options for every command:
  --org ALIAS          use the Salesforce CLI login ALIAS instead of SF_* variables
  --api-version V      API version (default: SF_API_VERSION, else the library's)
  --timeout SECONDS    limit for each request, and for waiting on an asynchronous run
  --format FORMAT      csv, tsv, json, jsonl or table (aligned columns for a terminal;
                       table reads all rows before printing, to measure the columns)
  -o, --output FILE    write to FILE instead of standard output (- is standard output)
  -q, --quiet          no progress or notes on standard error (errors still appear)
  --progress           progress of asynchronous runs on standard error even when it is
                       not a terminal (by default only a terminal gets it)
  -h, --help           help (also: sfreports help COMMAND)
  --version            the sfreports version

Exit status:
  0  success
  1  failure (network, authentication, API error...): the message is on standard error
  2  usage error (unknown option, bad filter syntax...), with the usage line
  3  rows were written, but Salesforce truncated the report (it returns at most 2,000
     detail rows per run) and --all was not given
]]

local COMMAND_HELP = {
  run = [[
usage: sfreports run REPORT_ID [OPTIONS]

Runs a saved report and writes its detail rows as they are produced: CSV by default
(one header line of grouping then detail column labels, one line per row).

Output:
  --format FORMAT       csv (default), tsv, json (an array of objects), jsonl (one
                        object per line) or table (aligned; reads all rows first)
  --raw                 values instead of display labels (350000 rather than "$350,000.00")
  --formula-guard       CSV/TSV: prefix fields starting with = + - @ with ' (spreadsheets)
  -o, --output FILE     write to FILE (created only once the report has arrived)

Changing the run (nothing is saved):
  --filter "COLUMN OPERATOR VALUE"   add a filter (repeatable). OPERATOR is = != < > <= >=
                        or an API name: equals notEqual lessThan greaterThan lessOrEqual
                        greaterOrEqual contains notContain startsWith includes excludes
                        within (also starts_with, not_contains...). VALUE may be quoted
                        ("Acme, Inc." or 'x'); a comma list means any of them:
                        --filter "STAGE_NAME = Prospecting,Qualification"
                        COLUMN is an API name or a label (quote a label with spaces).
  --logic "1 AND (2 OR 3)"  how the added filters combine (numbers count --filter options)
  --replace-filters[=COL,...]  drop the saved filters (all of them, or those on COL...)
  --date COLUMN:LITERAL set the standard date filter: --date CLOSE_DATE:THIS_FISCAL_QUARTER;
                        --date LAST_N_DAYS:30 uses the report's saved date column
  --from YYYY-MM-DD, --to YYYY-MM-DD   a custom date range instead of a literal
  --date-column COLUMN  the date column for --date LITERAL or --from/--to
  --sort COLUMN[:desc]  sort the detail rows (repeatable; :asc is the default)
  --top N[:desc]        only the first N rows in sort order (needs --sort or a saved sort)
  --columns A,B,C       the detail columns to return, in this order

Running:
  --async               run as an asynchronous instance and wait for it, with progress
                        on standard error (see --progress, --quiet)
  --no-wait             start an asynchronous run, print its instance id and exit
                        (then: sfreports fetch REPORT_ID INSTANCE_ID)
  --timeout SECONDS     request limit; with --async also the limit for waiting
  --all                 page past the 2,000-row limit (needs a library with client:run_all)

Exit status 3 means the rows were written but the report was truncated at 2,000 rows:
narrow it with --filter, or use --all.

Examples:
  sfreports run 00OFk00000A0001MAB > pipeline.csv
  sfreports run 00OFk00000A0001MAB --format table --columns OPPORTUNITY_NAME,AMOUNT \
      --sort AMOUNT:desc --top 10
  sfreports run 00OFk00000A0001MAB --filter "AMOUNT >= 100000" \
      --filter "STAGE_NAME = 'Closed Won','Closed Lost'" --logic "1 OR 2"
  sfreports run 00OFk00000A0001MAB --date CLOSE_DATE:LAST_N_DAYS:90 --format jsonl --raw -o recent.jsonl
  sfreports run 00OFk00000A0001MAB --async --timeout 900 --org prod
]],
  describe = [[
usage: sfreports describe REPORT_ID [--format json|table|csv|tsv|jsonl] [-o FILE]

Prints the report's describe (reportMetadata, reportExtendedMetadata, reportTypeMetadata)
as JSON. With --format table, csv, tsv or jsonl it lists the columns the report type offers
instead: API name, label, data type, and whether the report shows it ("detail",
"grouping") -- the names to use with --filter, --sort and --columns.

Edit the reportMetadata of the JSON and run it with `sfreports query`.

Examples:
  sfreports describe 00OFk00000A0001MAB > pipeline.json
  sfreports describe 00OFk00000A0001MAB --format table
]],
  instances = [[
usage: sfreports instances REPORT_ID [--format table|csv|tsv|json|jsonl] [-o FILE]

Lists the report's asynchronous runs (kept by Salesforce for 24 hours): id, status,
requestDate, completionDate, ownerId. The default format is table.

Examples:
  sfreports instances 00OFk00000A0001MAB
  sfreports instances 00OFk00000A0001MAB --format csv
]],
  fetch = [[
usage: sfreports fetch REPORT_ID INSTANCE_ID [--wait] [OPTIONS]

Writes the rows of an asynchronous run (from `sfreports run --no-wait` or
`sfreports instances`). Accepts the output options of `run` (--format, --raw,
--formula-guard, -o). A run that has not finished is a failure, unless --wait: then
it is waited for (up to --timeout seconds), with progress as for `run --async`.

Examples:
  id=$(sfreports run 00OFk00000A0001MAB --no-wait)
  sfreports fetch 00OFk00000A0001MAB "$id" --wait -o pipeline.csv
]],
  delete = [[
usage: sfreports delete REPORT_ID INSTANCE_ID

Deletes an asynchronous run and its results. Prints a note on standard error unless --quiet.

Example:
  sfreports delete 00OFk00000A0001MAB 0LGFk00000X0001AAA
]],
  list = [[
usage: sfreports list [--format table|csv|tsv|json|jsonl] [-o FILE]

Lists the reports the user viewed recently (what the API returns): id, name, url.
The default format is table.

Example:
  sfreports list --format csv
]],
  query = [[
usage: sfreports query METADATA.json [OPTIONS]

Runs report metadata without saving a report (POST analytics/reports/query). The file
holds {"reportMetadata": {...}} (for example `sfreports describe` output, edited) or the
reportMetadata object itself; - reads standard input. Accepts the output options of `run`
and its --filter, --logic, --replace-filters, --date, --from/--to, --sort, --top and
--columns (checked against the metadata itself).

Examples:
  sfreports describe 00OFk00000A0001MAB > md.json   # edit md.json, then:
  sfreports query md.json --format table
  sfreports query - --filter "AMOUNT > 5000" < md.json
]],
  types = [[
usage: sfreports types [--format table|csv|tsv|json|jsonl] [-o FILE]

Lists the report types by category: category, type (API name), label.
The default format is table.

Example:
  sfreports types --format csv
]],
  help = [[
usage: sfreports help [COMMAND]

Prints the overview, or the options and examples of COMMAND.
]],
}

---------------------------------------------------------------------------------------
-- commands and options

-- args: positional arguments; scopes: which option groups apply; format: default output.
local COMMANDS = {
  run = { args = { "REPORT_ID" }, scopes = { output = true, report = true, change = true, wait = true, run = true },
    format = "csv" },
  query = { args = { "METADATA.json" }, scopes = { output = true, report = true, change = true }, format = "csv" },
  fetch = { args = { "REPORT_ID", "INSTANCE_ID" }, scopes = { output = true, report = true, wait = true, fetch = true },
    format = "csv" },
  describe = { args = { "REPORT_ID" }, scopes = { output = true }, format = "json" },
  instances = { args = { "REPORT_ID" }, scopes = { output = true }, format = "table" },
  list = { args = {}, scopes = { output = true }, format = "table" },
  types = { args = {}, scopes = { output = true }, format = "table" },
  delete = { args = { "REPORT_ID", "INSTANCE_ID" }, scopes = {} },
}
cli.COMMANDS = COMMANDS

-- arity: "flag" (no value), "value" (required), "optional" (only as --name=value);
-- many: repeatable (values collected in a list). scope "all" applies to every command.
local OPTIONS = {
  ["--org"] = { key = "org", arity = "value", scope = "all" },
  ["--api-version"] = { key = "api_version", arity = "value", scope = "all" },
  ["--timeout"] = { key = "timeout", arity = "value", scope = "all" },
  ["--quiet"] = { key = "quiet", arity = "flag", scope = "all" },
  ["-q"] = { key = "quiet", arity = "flag", scope = "all" },
  ["--help"] = { key = "help", arity = "flag", scope = "all" },
  ["-h"] = { key = "help", arity = "flag", scope = "all" },
  ["--version"] = { key = "version", arity = "flag", scope = "all" },
  ["--progress"] = { key = "progress", arity = "flag", scope = "wait" },
  ["--format"] = { key = "format", arity = "value", scope = "output" },
  ["--output"] = { key = "output", arity = "value", scope = "output" },
  ["-o"] = { key = "output", arity = "value", scope = "output" },
  ["--raw"] = { key = "raw", arity = "flag", scope = "report" },
  ["--formula-guard"] = { key = "formula_guard", arity = "flag", scope = "report" },
  ["--filter"] = { key = "filter", arity = "value", many = true, scope = "change" },
  ["--logic"] = { key = "logic", arity = "value", scope = "change" },
  ["--replace-filters"] = { key = "replace_filters", arity = "optional", scope = "change" },
  ["--date"] = { key = "date", arity = "value", scope = "change" },
  ["--from"] = { key = "from", arity = "value", scope = "change" },
  ["--to"] = { key = "to", arity = "value", scope = "change" },
  ["--date-column"] = { key = "date_column", arity = "value", scope = "change" },
  ["--sort"] = { key = "sort", arity = "value", many = true, scope = "change" },
  ["--top"] = { key = "top", arity = "value", scope = "change" },
  ["--columns"] = { key = "columns", arity = "value", many = true, scope = "change" },
  ["--async"] = { key = "async", arity = "flag", scope = "run" },
  ["--no-wait"] = { key = "no_wait", arity = "flag", scope = "run" },
  ["--all"] = { key = "all", arity = "flag", scope = "run" },
  ["--wait"] = { key = "wait", arity = "flag", scope = "fetch" },
}
cli.OPTIONS = OPTIONS

local FORMATS = { csv = true, tsv = true, json = true, jsonl = true, table = true }

-- A usage error travels as this table through error() inside parsing helpers.
local UsageError = {}
UsageError.__index = UsageError

local function usage_error(msg)
  error(setmetatable({ message = msg }, UsageError), 0)
end

local function is_usage_error(e)
  return getmetatable(e) == UsageError
end

-- True for option names that would carry a secret.
local function is_secret_option(name)
  local l = lower(name)
  return find(l, "token", 1, true) ~= nil or find(l, "password", 1, true) ~= nil
    or find(l, "secret", 1, true) ~= nil or l == "--sid" or l == "--session-id"
end

-- Splits argv into options (by key) and positional arguments. Raises usage errors.
local function parse_argv(argv)
  local o, positional, seen = {}, {}, {}
  local i, n = 1, #argv
  local only_positional = false
  while i <= n do
    local a = argv[i]
    if type(a) ~= "string" then usage_error("argument " .. i .. " is not a string") end
    if only_positional or a == "-" or sub(a, 1, 1) ~= "-" then
      positional[#positional + 1] = a
    elseif a == "--" then
      only_positional = true
    else
      local name, value = match(a, "^(%-%-[^=]+)=(.*)$")
      if not name then
        name = a
        -- -oFILE
        if sub(a, 1, 2) == "-o" and #a > 2 and sub(a, 2, 2) ~= "-" then name, value = "-o", sub(a, 3) end
      end
      if is_secret_option(name) then
        usage_error("option " .. name .. " is not accepted: a token on the command line shows in `ps` and in"
          .. " shell history. Set SF_INSTANCE_URL and SF_ACCESS_TOKEN in the environment, or use --org ALIAS"
          .. " (a Salesforce CLI login)")
      end
      local spec = OPTIONS[name]
      if not spec then usage_error("unknown option " .. name) end
      if spec.arity == "flag" then
        if value ~= nil then usage_error("option " .. name .. " takes no value") end
        value = true
      elseif spec.arity == "optional" then
        if value == nil then value = true end
      elseif value == nil then
        i = i + 1
        value = argv[i]
        if value == nil then usage_error("option " .. name .. " needs a value") end
      end
      if spec.many then
        o[spec.key] = o[spec.key] or {}
        local list = o[spec.key]
        list[#list + 1] = value
      else
        if seen[spec.key] and spec.arity ~= "flag" then
          usage_error("option " .. name .. " is given twice")
        end
        o[spec.key] = value
      end
      seen[spec.key] = name
    end
    i = i + 1
  end
  return o, positional, seen
end

---------------------------------------------------------------------------------------
-- value syntax: filters, dates, sorts, lists

-- Filter operators: symbols and API names, matched after lower-casing and dropping _ and -.
local SYMBOL_OPERATORS = {
  ["="] = "equals", ["=="] = "equals", ["!="] = "notEqual", ["<>"] = "notEqual",
  ["<"] = "lessThan", [">"] = "greaterThan", ["<="] = "lessOrEqual", [">="] = "greaterOrEqual",
}
local WORD_OPERATORS = {
  equals = "equals", eq = "equals", equal = "equals",
  notequal = "notEqual", notequals = "notEqual", ne = "notEqual",
  lessthan = "lessThan", lt = "lessThan", greaterthan = "greaterThan", gt = "greaterThan",
  lessorequal = "lessOrEqual", le = "lessOrEqual", greaterorequal = "greaterOrEqual", ge = "greaterOrEqual",
  contains = "contains", notcontain = "notContain", notcontains = "notContain",
  startswith = "startsWith", includes = "includes", excludes = "excludes", within = "within",
}
-- Operators whose value may be a list ("any of these").
local LIST_OPERATORS = {
  equals = true, notEqual = true, contains = true, notContain = true, startsWith = true,
  includes = true, excludes = true,
}

-- Reads a quoted string starting at pos (the quote). Backslash escapes the quote and itself.
-- Returns the text and the position after the closing quote, or nil.
local function read_quoted(s, pos)
  local q = sub(s, pos, pos)
  local out = {}
  local i = pos + 1
  while i <= #s do
    local c = sub(s, i, i)
    if c == "\\" and (sub(s, i + 1, i + 1) == q or sub(s, i + 1, i + 1) == "\\") then
      out[#out + 1] = sub(s, i + 1, i + 1)
      i = i + 2
    elseif c == q then
      return concat(out), i + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return nil
end

-- Parses a filter VALUE: one value or a comma list, items optionally quoted.
-- Returns a string or a list of strings.
local function parse_filter_value(s, spec)
  if not find(s, "%S") then return "" end
  local items = {}
  local pos = find(s, "%S")
  while true do
    local c = sub(s, pos, pos)
    local item
    if c == '"' or c == "'" then
      local text, after = read_quoted(s, pos)
      if not text then usage_error(format("--filter %q: a quote is not closed", spec)) end
      item = text
      pos = find(s, "%S", after) or #s + 1
      local nextc = sub(s, pos, pos)
      if nextc ~= "," and nextc ~= "" then
        usage_error(format("--filter %q: unexpected text after a quoted value; separate values with commas", spec))
      end
    else
      local comma = find(s, ",", pos, true)
      item = match(sub(s, pos, (comma or #s + 1) - 1), "^(.-)%s*$")
      if item == "" then usage_error(format("--filter %q: an empty value in a comma list", spec)) end
      pos = comma or #s + 1
    end
    items[#items + 1] = item
    if sub(s, pos, pos) ~= "," then break end
    pos = find(s, "%S", pos + 1)
    if not pos then usage_error(format("--filter %q: the comma list ends with a comma", spec)) end
  end
  if #items == 1 then return items[1] end
  return items
end

-- "COLUMN OPERATOR VALUE" -> { column =, operator =, value = }. Raises usage errors.
function cli.parse_filter(spec)
  local pos = find(spec, "%S")
  if not pos then usage_error("--filter needs \"COLUMN OPERATOR VALUE\", got an empty string") end
  local column
  local c = sub(spec, pos, pos)
  if c == '"' or c == "'" then
    local text, after = read_quoted(spec, pos)
    if not text or text == "" then usage_error(format("--filter %q: the column name is not closed or empty", spec)) end
    column, pos = text, after
  else
    local s, e = find(spec, "^[^%s=!<>]+", pos)
    if not s then usage_error(format("--filter %q: expected a column name first", spec)) end
    column, pos = sub(spec, s, e), e + 1
  end
  pos = find(spec, "%S", pos)
  if not pos then
    usage_error(format("--filter %q: expected \"COLUMN OPERATOR VALUE\", e.g. \"AMOUNT > 1000\"", spec))
  end
  local operator, word
  local s, e = find(spec, "^[=!<>]+", pos)
  if s then
    word = sub(spec, s, e)
    operator = SYMBOL_OPERATORS[word]
  else
    s, e = find(spec, "^[%a_%-]+", pos)
    if s then
      word = sub(spec, s, e)
      operator = WORD_OPERATORS[gsub(lower(word), "[_%-]", "")]
      -- a word operator must be followed by a space or the end
      if operator and e < #spec and not find(sub(spec, e + 1, e + 1), "%s") then operator = nil end
    end
  end
  if not operator then
    usage_error(format("--filter %q: unknown operator %s; use = != < > <= >= or an API name"
      .. " (equals, notEqual, lessThan, greaterThan, lessOrEqual, greaterOrEqual, contains,"
      .. " notContain, startsWith, includes, excludes, within)", spec, word and ("'" .. word .. "'") or "(none)"))
  end
  local value = parse_filter_value(sub(spec, e + 1), spec)
  if type(value) == "table" and not LIST_OPERATORS[operator] then
    usage_error(format("--filter %q: %s takes one value, not a comma list (quote a value that holds a comma)",
      spec, operator))
  end
  return { column = column, operator = operator, value = value }
end

-- "a, b,c" -> { "a", "b", "c" }
local function comma_list(s, option)
  local out = {}
  for item in (s .. ","):gmatch("([^,]*),") do
    item = match(item, "^%s*(.-)%s*$")
    if item == "" then usage_error(option .. " " .. format("%q", s) .. ": an empty name in the comma list") end
    out[#out + 1] = item
  end
  return out
end

local function is_date_literal(s)
  return find(s, "^%a[%w_]*$") ~= nil or find(s, "^%a[%w_]*:%d+$") ~= nil
end

local DAYS_IN_MONTH = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function check_iso_date(s, option)
  local y, m, d = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  m, d = tonumber(m), tonumber(d)
  if not y or m < 1 or m > 12 or d < 1 or d > DAYS_IN_MONTH[m] then
    usage_error(format("%s %q is not a date like 2024-01-31", option, s))
  end
  return s
end

-- --date [COLUMN:]LITERAL (with --date-column), or --from/--to -> date_filter option.
local function date_filter(o)
  local column = o.date_column
  if o.date then
    if o.from or o.to then usage_error("--date and --from/--to cannot be combined") end
    local spec = o.date
    local col, literal = match(spec, "^([^:]+):(.+)$")
    -- LAST_N_DAYS:30 is a literal, not COLUMN:LITERAL
    if not col or find(literal, "^%d+$") then col, literal = nil, spec end
    if col and column then usage_error("--date names a column and --date-column another; give one") end
    if not is_date_literal(literal) then
      usage_error(format("--date %q: expected COLUMN:LITERAL or LITERAL, e.g. CLOSE_DATE:THIS_MONTH"
        .. " or LAST_N_DAYS:30", spec))
    end
    return { column = col or column, duration = upper(literal) }
  end
  if o.from or o.to then
    local from = o.from and check_iso_date(o.from, "--from")
    local to = o.to and check_iso_date(o.to, "--to")
    if from and to and from > to then usage_error(format("--from %s is after --to %s", from, to)) end
    return { column = column, from = from, to = to }
  end
  if column then usage_error("--date-column needs --date LITERAL or --from/--to") end
  return nil
end

-- "COLUMN[:asc|desc]" -> { column =, order = }
local function parse_sort(s)
  local col, order = match(s, "^(.*):(%a+)$")
  if col and (lower(order) == "asc" or lower(order) == "desc") and col ~= "" then
    return { column = col, order = lower(order) }
  end
  if not find(s, "%S") then usage_error("--sort needs a column name") end
  return { column = s, order = "asc" }
end

local function parse_top(s)
  local n, dir = match(s, "^(%d+):(%a+)$")
  if not n then n = match(s, "^(%d+)$") end
  n = tonumber(n)
  if not n or n < 1 or n ~= floor(n) then
    usage_error(format("--top %q: expected a positive whole number of rows, e.g. 10 or 10:desc", s))
  end
  if dir then
    dir = lower(dir)
    if dir ~= "asc" and dir ~= "desc" then usage_error(format("--top %q: the direction is asc or desc", s)) end
    return { rows = n, direction = dir }
  end
  return n
end

-- Turns the parsed "change" options into client run options. Raises usage errors.
function cli.run_options(o)
  local r = {}
  if o.filter then
    local list = {}
    for i, spec in ipairs(o.filter) do list[i] = cli.parse_filter(spec) end
    r.filters = list
    if o.logic then
      local filters = require "sfreports.filters"
      local ok, canonical, err = pcall(filters.normalize_logic, o.logic, #list)
      if not ok or not canonical then
        local why = ok and err and err.message or tostring(canonical)
        usage_error("--logic " .. format("%q", o.logic) .. ": " .. why)
      end
      r.logic = o.logic
    end
  elseif o.logic then
    usage_error("--logic needs --filter options to combine")
  end
  if o.replace_filters == true then
    r.replace_filters = true
  elseif o.replace_filters then
    r.replace_filters = comma_list(o.replace_filters, "--replace-filters")
  end
  r.date_filter = date_filter(o)
  if o.sort then
    local list = {}
    for i, s in ipairs(o.sort) do list[i] = parse_sort(s) end
    r.sort = list
  end
  if o.top then r.top = parse_top(o.top) end
  if o.columns then
    local cols = {}
    for _, s in ipairs(o.columns) do
      for _, c in ipairs(comma_list(s, "--columns")) do cols[#cols + 1] = c end
    end
    r.columns = cols
  end
  return r
end

---------------------------------------------------------------------------------------
-- the session: streams, messages, client

local Session = {}
Session.__index = Session

local function getenv_of(env)
  if env == nil then return os.getenv end
  if type(env) == "function" then return env end
  return function(k) return env[k] end
end

-- True when file descriptor 2 is a terminal (asks the shell: Lua has no isatty).
local function stderr_is_tty()
  local a, _, c = os.execute("test -t 2")
  if type(a) == "number" then return a == 0 end -- Lua 5.1: the status
  return a == true and (c == nil or c == 0)
end

function Session:note(msg)
  if not self.o.quiet then self.stderr:write("sfreports: ", msg, "\n") end
end

-- The message never holds the access token, whatever produced it.
function Session:scrub(msg)
  msg = tostring(msg)
  local token = self.getenv("SF_ACCESS_TOKEN")
  if type(token) == "string" and #token >= 4 then
    local s = 1
    while true do
      local a, b = find(msg, token, s, true)
      if not a then break end
      msg = sub(msg, 1, a - 1) .. "[redacted]" .. sub(msg, b + 1)
      s = a + 10
    end
  end
  return msg
end

function Session:fail(msg)
  self.stderr:write("sfreports: ", self:scrub(msg), "\n")
  return EXIT.FAILURE
end

-- The command-line options behind the library's run options (named by errors' `option`).
local OPTION_FLAGS = {
  filters = "--filter", logic = "--logic", replace_filters = "--replace-filters",
  date_filter = "--date/--from/--to", sort = "--sort", top = "--top", columns = "--columns",
}

-- First line of a raised error, without the "file.lua:12: " position.
local function raised_message(e)
  local msg = match(tostring(e), "^[^\n]*")
  return (gsub(msg, "^[^%s:]+%.lua:%d+: ", ""))
end

-- A library error value as one line: message plus the fields that help (status, code).
local function describe_error(err)
  if type(err) ~= "table" then return tostring(err) end
  local msg = tostring(err.message or err)
  local extra = {}
  if err.code and err.code ~= "" and not find(msg, tostring(err.code), 1, true) then
    extra[#extra + 1] = tostring(err.code)
  end
  if err.status and not find(msg, tostring(err.status), 1, true) then
    extra[#extra + 1] = "HTTP " .. tostring(err.status)
  end
  if #extra > 0 then msg = msg .. " (" .. concat(extra, ", ") .. ")" end
  local flag = OPTION_FLAGS[err.option]
  if flag then msg = msg .. " [" .. flag .. "]" end
  return msg
end

function Session:fail_err(err, what)
  local msg = describe_error(err)
  if what then msg = what .. ": " .. msg end
  return self:fail(msg)
end

-- Builds the client from --org or the SF_* variables. Returns it, or nil and a message.
function Session:client()
  if self._client then return self._client end
  local ok, sfreports = pcall(require, "sfreports")
  if not ok then
    return nil, "cannot load the sfreports library (is it built? run `make` in the checkout): " .. tostring(sfreports)
  end
  local o = self.o
  local opts = { timeout = self.timeout, user_agent = "sfreports-cli/" .. tostring(sfreports.VERSION) }
  if o.api_version then opts.api_version = o.api_version end
  local client, err
  if o.org then
    opts.api_version = opts.api_version or self.getenv("SF_API_VERSION")
    opts.auth = { flow = "sf_cli", alias = o.org }
    local pok, c, e = pcall(sfreports.new, opts)
    if not pok then
      local why = raised_message(c)
      if find(why, "module 'sfreports.auth' not found", 1, true) then
        why = "this installation of sfreports has no sfreports.auth module (Salesforce CLI logins)"
      end
      return nil, format("cannot use the Salesforce CLI login %q: %s", o.org, why)
    end
    client, err = c, e
    if not client then
      return nil, format("cannot use the Salesforce CLI login %q: %s", o.org, describe_error(err))
    end
  else
    client, err = sfreports.from_env(opts, self.getenv)
    if not client then
      local msg = describe_error(err)
      if err and err.kind == "invalid" and find(msg, "not set", 1, true) then
        msg = msg .. ": set SF_INSTANCE_URL and SF_ACCESS_TOKEN, or use --org ALIAS"
      end
      return nil, msg
    end
  end
  self._client = client
  return client
end

-- Opens the output (lazily, so that a failed run leaves an existing file alone).
function Session:open_output()
  local path = self.o.output
  if path == nil or path == "-" then return self.stdout end
  local f, err = io.open(path, "wb")
  if not f then return nil, "cannot write " .. path .. ": " .. tostring(err) end
  self._file = f
  return f
end

function Session:close_output()
  if self._file then
    local ok, err = self._file:close()
    self._file = nil
    if not ok then return nil, err end
    return true
  end
  local ok, err = self.stdout:flush()
  if ok == nil and err then return nil, err end
  return true
end

---------------------------------------------------------------------------------------
-- output: report rows and plain records in every format

local NUMERIC_TYPES = { int = true, double = true, currency = true, percent = true }

-- East Asian wide and emoji ranges (two terminal cells), and combining marks (none).
local WIDE = {
  { 0x1100, 0x115F }, { 0x2614, 0x2615 }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
  { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF }, { 0xFE30, 0xFE4F },
  { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F }, { 0x1F900, 0x1F9FF }, { 0x20000, 0x3FFFD },
}

local function cp_width(cp)
  if cp >= 0x0300 and cp <= 0x036F then return 0 end
  if cp < 0x1100 then return 1 end
  for _, r in ipairs(WIDE) do
    if cp >= r[1] and cp <= r[2] then return 2 end
  end
  return 1
end

-- Display width of a UTF-8 string in terminal cells.
local function width(s)
  if not find(s, "[\128-\255]") then return #s end
  local w, i, n = 0, 1, #s
  while i <= n do
    local c = byte(s, i)
    local len, cp = 1, c
    if c >= 0xF0 then len, cp = 4, c % 8
    elseif c >= 0xE0 then len, cp = 3, c % 16
    elseif c >= 0xC0 then len, cp = 2, c % 32 end
    for k = i + 1, i + len - 1 do cp = cp * 64 + (byte(s, k) or 128) % 64 end
    if c >= 0x80 and c < 0xC0 then w = w + 1 else w = w + cp_width(cp) end
    i = i + len
  end
  return w
end

-- The table format: the rows go through the TSV writer (same shape and text as CSV, with
-- TAB/CR/LF escaped, so a field never breaks a line), then are aligned. This buffers.
local function table_sink(out, numeric)
  local lines = {}
  local pending = ""
  local function sink(chunk)
    pending = pending .. chunk
    local s = 1
    while true do
      local nl = find(pending, "\n", s, true)
      if not nl then break end
      lines[#lines + 1] = sub(pending, s, nl - 1)
      s = nl + 1
    end
    pending = sub(pending, s)
    return true
  end
  local function flush()
    local rows, widths = {}, {}
    for i, line in ipairs(lines) do
      local fields = {}
      for f in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = f end
      rows[i] = fields
      for j, f in ipairs(fields) do
        local w = width(f)
        if not widths[j] or w > widths[j] then widths[j] = w end
      end
    end
    local ncols = #widths
    for i, fields in ipairs(rows) do
      local parts = {}
      for j = 1, ncols do
        local f = fields[j] or ""
        local pad = rep(" ", widths[j] - width(f))
        if i > 1 and numeric[j] then parts[j] = pad .. f
        elseif j == ncols then parts[j] = f
        else parts[j] = f .. pad end
      end
      local ok, err = out:write(concat(parts, "  "), "\n")
      if not ok then return nil, err end
      if i == 1 then
        local rule = {}
        for j = 1, ncols do rule[j] = rep("-", widths[j]) end
        ok, err = out:write(concat(rule, "  "), "\n")
        if not ok then return nil, err end
      end
    end
    return true
  end
  return sink, flush
end

-- Which output columns (block?, groupings, details) hold numbers, for right alignment.
local function numeric_columns(columns, gcols, blocks)
  local numeric, k = {}, blocks and 1 or 0
  for _, c in ipairs(gcols or {}) do
    k = k + 1
    numeric[k] = NUMERIC_TYPES[c.data_type] or false
  end
  for _, c in ipairs(columns or {}) do
    k = k + 1
    numeric[k] = NUMERIC_TYPES[c.data_type] or false
  end
  return numeric
end

-- Writes rows from `source` (a report, or { columns =, rows = iterator }) in the session's
-- format. Returns the row count, or nil and a message.
function Session:write_rows(source, out, raw)
  local writers = require "sfreports.writers"
  local fmt = self.format
  local wopts = { raw = raw and true or false }
  local flush
  local sink = out
  local shape = source
  if type(source.columns) ~= "function" then
    shape = { columns = source.columns, grouping_columns = source.grouping_columns }
  end
  if fmt == "table" then
    local cols = type(source.columns) == "function" and source:columns() or source.columns
    local gcols = type(source.grouping_columns) == "function" and source:grouping_columns()
      or source.grouping_columns
    local blocks = type(source.blocks) == "function" and #source:blocks() > 0
    sink, flush = table_sink(out, numeric_columns(cols, gcols, blocks))
    fmt = "tsv"
  elseif fmt == "csv" or fmt == "tsv" then
    wopts.formula_guard = self.o.formula_guard and true or false
  end
  local w = writers.new(fmt, sink, wopts)
  local ok, err = w:header(shape)
  if not ok then return nil, err end
  local iter = type(source.rows) == "function" and source:rows() or source.rows_iter
  for row in iter do
    ok, err = w:row(row)
    if not ok then return nil, err end
  end
  local n, ferr = w:finish()
  if not n then return nil, ferr end
  if flush then
    ok, err = flush()
    if not ok then return nil, err end
  end
  return n
end

local function cell(v)
  if v == nil then return { value = require("sfreports.json").null } end
  if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
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
  if not n then
    self:close_output()
    return self:fail("cannot write the output: " .. tostring(err))
  end
  local ok, cerr = self:close_output()
  if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
  return EXIT.OK
end

-- Writes a report's rows; exit 3 (with a warning naming the fix) when it is truncated.
function Session:write_report(report, paged)
  local out, oerr = self:open_output()
  if not out then return self:fail(oerr) end
  local n, err = self:write_rows(report, out, self.o.raw)
  if not n then
    self:close_output()
    return self:fail("cannot write the output: " .. tostring(err))
  end
  local ok, cerr = self:close_output()
  if not ok then return self:fail("cannot write the output: " .. tostring(cerr)) end
  if paged and (report.error or report.all_data == false) then
    -- a page failed after some rows were written: never let that pass as a complete pull
    return self:fail_err(report.error or "a page was missing",
      format("paging stopped after %d rows, so the output is incomplete", n))
  end
  if report.truncated and not paged then
    -- a warning, even with --quiet: the output is incomplete
    self.stderr:write(format("sfreports: warning: the report was truncated: Salesforce returned %d detail"
      .. " row%s and has more (it returns at most 2,000 per run); add --all to page through every row,"
      .. " or narrow the report with --filter\n", n, n == 1 and "" or "s"))
    return EXIT.TRUNCATED
  end
  return EXIT.OK
end

---------------------------------------------------------------------------------------
-- waiting for an asynchronous run, with progress

function Session:progress_fn()
  local o = self.o
  if o.quiet then return nil end
  local tty = self.stderr_tty
  if tty == nil then
    tty = self.stderr == io.stderr and stderr_is_tty()
    self.stderr_tty = tty
  end
  if not (tty or o.progress) then return nil end
  local stderr = self.stderr
  return function(inst, elapsed, final)
    local polls = inst.polls or 0
    local line = format("sfreports: instance %s %s, %.1fs, %d poll%s", tostring(inst.id),
      tostring(inst.status), elapsed, polls, polls == 1 and "" or "s")
    if tty then
      stderr:write("\r", line, "\027[K", final and "\n" or "")
    else
      stderr:write(line, "\n")
    end
  end
end

-- Waits for the instance with the library's schedule; its sleep hook prints the progress
-- (the instance's status and poll count are current whenever it sleeps). Returns the
-- report, or nil and an error.
function Session:wait(client, inst)
  local core = require "sfreports.core"
  local clock = self.clock or core.monotime
  local sleep = self.sleep or core.sleep
  local progress = self:progress_fn()
  local start = clock()
  local opts = { timeout = self.timeout }
  opts.sleep = function(seconds)
    if progress then progress(inst, clock() - start, false) end
    return sleep(seconds)
  end
  local report, err = client:wait(inst, opts)
  if progress and ((inst.polls or 0) > 0) then progress(inst, clock() - start, true) end
  if not report and type(err) == "table" and err.kind == "timeout" and not err.deleted then
    err.message = tostring(err.message) .. format("; from the command line: sfreports fetch %s %s --wait",
      tostring(inst.report_id), tostring(inst.id))
  end
  return report, err
end

---------------------------------------------------------------------------------------
-- commands

local function check_report_id(id, what)
  local ids = require "sfreports.ids"
  local ok, why = ids.check(id, what)
  if not ok then usage_error(why) end
end

local commands = {}

function commands.run(s, args)
  local o = s.o
  check_report_id(args[1], "report id")
  local ropts = cli.run_options(o)
  if o.no_wait then
    if o.all then usage_error("--no-wait cannot be combined with --all") end
    if o.output or o.format or o.raw then
      usage_error("--no-wait writes only the instance id; --format, --raw and -o apply to `sfreports fetch`")
    end
  end
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local report, err
  if o.all then
    if type(client.run_all) ~= "function" then
      usage_error("--all needs paging past 2,000 rows (client:run_all), which this version of the sfreports"
        .. " library does not have; narrow the report with --filter instead")
    end
    if o.async then
      usage_error("--all pages with synchronous runs (one per 2,000 rows); drop --async")
    end
    report, err = client:run_all(args[1], ropts)
    if not report then return s:fail_err(err) end
    return s:write_report(report, true)
  end
  if o.async or o.no_wait then
    local inst
    inst, err = client:run_async(args[1], ropts)
    if not inst then return s:fail_err(err) end
    if o.no_wait then
      s.stdout:write(tostring(inst.id), "\n")
      s:note(format("started instance %s (%s); get its rows with: sfreports fetch %s %s --wait",
        tostring(inst.id), tostring(inst.status), args[1], tostring(inst.id)))
      return EXIT.OK
    end
    report, err = s:wait(client, inst)
  else
    report, err = client:run_sync(args[1], ropts)
  end
  if not report then return s:fail_err(err) end
  return s:write_report(report, false)
end

function commands.fetch(s, args)
  check_report_id(args[1], "report id")
  check_report_id(args[2], "instance id")
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local report, err
  if s.o.wait then
    local async = require "sfreports.async"
    local inst = async.instance(client, args[1], { id = args[2], status = "Unknown" })
    report, err = s:wait(client, inst)
  else
    report, err = client:fetch_instance(args[1], args[2])
    if not report and type(err) == "table" and err.code == "INSTANCE_NOT_READY" then
      err = describe_error(err) .. "; add --wait to wait for it"
    end
  end
  if not report then return s:fail_err(err) end
  return s:write_report(report, false)
end

function commands.query(s, args)
  local path = args[1]
  local text, rerr
  if path == "-" then
    text = s.stdin:read("*a")
    if not text then rerr = "cannot read standard input" end
  else
    local f, ferr = io.open(path, "rb")
    if not f then usage_error("cannot read " .. path .. ": " .. tostring(ferr)) end
    text = f:read("*a")
    f:close()
  end
  if not text then return s:fail(rerr) end
  local ropts = cli.run_options(s.o)
  local core_ok, core = pcall(require, "sfreports.core")
  if not core_ok then return s:fail("cannot load the sfreports library: " .. tostring(core)) end
  local md, derr = core.decode(text)
  if md == nil then return s:fail_err(derr, path .. " is not JSON") end
  if type(md) ~= "table" or (type(md.reportMetadata) ~= "table" and md.reportFormat == nil
      and md.detailColumns == nil) then
    return s:fail(path .. " holds no report metadata: expected {\"reportMetadata\": {...}} or the"
      .. " reportMetadata object")
  end
  md = require("sfreports.json").mark_arrays(md)
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local report, err = client:query(md, ropts)
  if not report then return s:fail_err(err) end
  return s:write_report(report, false)
end

function commands.describe(s, args)
  check_report_id(args[1], "report id")
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local d, err = client:describe(args[1])
  if not d then return s:fail_err(err) end
  if s.format == "json" then
    local out, oerr = s:open_output()
    if not out then return s:fail(oerr) end
    local json = require "sfreports.json"
    local ok, werr = out:write(json.encode(json.mark_arrays(d), { pretty = true }), "\n")
    if not ok then
      s:close_output()
      return s:fail("cannot write the output: " .. tostring(werr))
    end
    local cok, cwerr = s:close_output()
    if not cok then return s:fail("cannot write the output: " .. tostring(cwerr)) end
    return EXIT.OK
  end
  -- the columns of the report type, with what the report does with them
  local md = type(d.reportMetadata) == "table" and d.reportMetadata or {}
  local role = {}
  for _, name in ipairs(type(md.detailColumns) == "table" and md.detailColumns or {}) do role[name] = "detail" end
  for _, key in ipairs({ "groupingsDown", "groupingsAcross" }) do
    for _, g in ipairs(type(md[key]) == "table" and md[key] or {}) do
      if type(g) == "table" and g.name then role[g.name] = "grouping" end
    end
  end
  local records, seen = {}, {}
  local function add(name, info)
    if type(name) ~= "string" or seen[name] then return end
    seen[name] = true
    info = type(info) == "table" and info or {}
    records[#records + 1] = { name = name, label = info.label, type = info.dataType, role = role[name] or "" }
  end
  local rtm = type(d.reportTypeMetadata) == "table" and d.reportTypeMetadata or {}
  for _, cat in ipairs(type(rtm.categories) == "table" and rtm.categories or {}) do
    if type(cat) == "table" and type(cat.columns) == "table" then
      local names = {}
      for name in pairs(cat.columns) do names[#names + 1] = name end
      table.sort(names)
      for _, name in ipairs(names) do add(name, cat.columns[name]) end
    end
  end
  -- columns the report shows but the report type listing left out
  local em = type(d.reportExtendedMetadata) == "table" and d.reportExtendedMetadata or {}
  for name in pairs(role) do
    local info = (type(em.detailColumnInfo) == "table" and em.detailColumnInfo[name])
      or (type(em.groupingColumnInfo) == "table" and em.groupingColumnInfo[name])
    add(name, info)
  end
  return s:write_records({ { name = "name" }, { name = "label" }, { name = "type" }, { name = "role" } }, records)
end

function commands.instances(s, args)
  check_report_id(args[1], "report id")
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local list, err = client:instances(args[1])
  if not list then return s:fail_err(err) end
  local records = {}
  for i, inst in ipairs(list) do
    records[i] = { id = inst.id, status = inst.status, requestDate = inst.request_date,
      completionDate = inst.completion_date, ownerId = inst.owner_id }
  end
  return s:write_records({ { name = "id" }, { name = "status" }, { name = "requestDate" },
    { name = "completionDate" }, { name = "ownerId" } }, records)
end

function commands.delete(s, args)
  check_report_id(args[1], "report id")
  check_report_id(args[2], "instance id")
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local ok, err = client:delete_instance(args[1], args[2])
  if not ok then return s:fail_err(err) end
  s:note("deleted instance " .. args[2] .. " of report " .. args[1])
  return EXIT.OK
end

function commands.list(s)
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local list, err = client:list_reports()
  if not list then return s:fail_err(err) end
  local records = {}
  for _, r in ipairs(type(list) == "table" and list or {}) do
    if type(r) == "table" then records[#records + 1] = { id = r.id, name = r.name, url = r.url } end
  end
  return s:write_records({ { name = "id" }, { name = "name" }, { name = "url" } }, records)
end

function commands.types(s)
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local cats, err = client:report_types()
  if not cats then return s:fail_err(err) end
  local records = {}
  for _, cat in ipairs(type(cats) == "table" and cats or {}) do
    for _, t in ipairs(type(cat) == "table" and type(cat.reportTypes) == "table" and cat.reportTypes or {}) do
      if type(t) == "table" then
        records[#records + 1] = { category = cat.label, type = t.type, label = t.label }
      end
    end
  end
  return s:write_records({ { name = "category" }, { name = "type" }, { name = "label" } }, records)
end

---------------------------------------------------------------------------------------
-- main

local function version_text()
  local ok, sfreports = pcall(require, "sfreports")
  local v = ok and sfreports.VERSION or "(library not built)"
  local rt = rawget(_G, "jit") and rawget(_G, "jit").version or _VERSION
  return format("sfreports %s (%s)", tostring(v), tostring(rt))
end

-- Checks the options against the command; fills s.format and s.timeout. Raises usage errors.
local function check_options(s, command, seen)
  local spec = COMMANDS[command]
  for _, name in pairs(seen) do
    local opt = OPTIONS[name]
    if opt.scope ~= "all" and not spec.scopes[opt.scope] then
      usage_error(format("option %s does not apply to `sfreports %s`", name, command))
    end
  end
  local o = s.o
  if o.format ~= nil then
    if not FORMATS[o.format] then
      usage_error(format("--format %q: expected csv, tsv, json, jsonl or table", o.format))
    end
  end
  s.format = o.format or spec.format
  if o.timeout ~= nil then
    local t = tonumber(o.timeout)
    if not t or t <= 0 or t ~= t or t == math.huge then
      usage_error(format("--timeout %q: expected a number of seconds, e.g. 300", o.timeout))
    end
    s.timeout = t
  end
  if o.org ~= nil and o.org == "" then usage_error("--org needs an alias") end
end

local function usage_exit(stderr, msg)
  stderr:write("sfreports: ", msg, "\n", cli.USAGE, "\n")
  return EXIT.USAGE
end

local function dispatch(s, positional, seen)
  local o = s.o
  if o.version then
    s.stdout:write(version_text(), "\n")
    return EXIT.OK
  end
  local command = positional[1]
  if command == "help" or (command == nil and o.help) then
    local topic = positional[2]
    if positional[3] then usage_error("help takes one command name") end
    if topic == nil then
      s.stdout:write(MAIN_HELP)
      return EXIT.OK
    end
    if not COMMAND_HELP[topic] then usage_error(format("no command %q; commands: run describe"
      .. " instances fetch delete list query types", topic)) end
    s.stdout:write(COMMAND_HELP[topic])
    return EXIT.OK
  end
  if command == nil then usage_error("a command is needed") end
  local spec = COMMANDS[command]
  if not spec then
    usage_error(format("unknown command %q; commands: run describe instances fetch delete list query types",
      command))
  end
  if o.help then
    s.stdout:write(COMMAND_HELP[command])
    return EXIT.OK
  end
  local args = {}
  for i = 2, #positional do args[i - 1] = positional[i] end
  if #args ~= #spec.args then
    usage_error(format("`sfreports %s` takes %s%s, got %d argument%s", command,
      #spec.args == 0 and "no arguments" or concat(spec.args, " "),
      "", #args, #args == 1 and "" or "s"))
  end
  check_options(s, command, seen)
  return commands[command](s, args)
end

-- Runs the command line. Returns the exit status (see the header of this file).
function cli.main(argv, env, io_streams)
  io_streams = io_streams or {}
  local s = setmetatable({
    stdout = io_streams.stdout or io.stdout,
    stderr = io_streams.stderr or io.stderr,
    stdin = io_streams.stdin or io.stdin,
    stderr_tty = io_streams.stderr_tty,
    sleep = io_streams.sleep, clock = io_streams.clock,
    getenv = getenv_of(env),
    o = {},
  }, Session)
  local ok, status = pcall(function()
    local o, positional, seen = parse_argv(argv or {})
    s.o = o
    return dispatch(s, positional, seen)
  end)
  if s._client then pcall(s._client.close, s._client) end
  if ok then return status end
  if is_usage_error(status) then return usage_exit(s.stderr, s:scrub(status.message)) end
  -- a raised error is a bug (or a misuse the checks above missed): say so, without a trace
  s.stderr:write("sfreports: internal error: ", s:scrub(tostring(status)), "\n")
  return EXIT.FAILURE
end

return cli
