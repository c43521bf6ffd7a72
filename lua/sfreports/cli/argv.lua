-- sfreports.cli.argv: the commands and options of `sfreports`, and the parsing of a
-- command line into options (by key) and positional arguments. A usage error (exit
-- status 2) travels through error() as a UsageError table, raised by usage_error.
local type, pairs, tonumber, setmetatable, getmetatable, error =
  type, pairs, tonumber, setmetatable, getmetatable, error
local find, match, sub, lower, format = string.find, string.match, string.sub, string.lower, string.format
local floor = math.floor

local argv = {}

-- The usage line printed with every usage error (and at the top of sfreports.cli.help).
argv.USAGE = "usage: sfreports COMMAND [ARGUMENTS] [OPTIONS]  (sfreports --help; sfreports help COMMAND)"

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
  export = { args = { "REPORT_ID" }, scopes = { output = true, change = true }, format = "xlsx" },
  -- list | show ID | status ID | refresh ID (sfreports.cli.dashboard checks which options apply)
  dashboard = { args = { "SUBCOMMAND", "DASHBOARD_ID" }, min_args = 1, scopes = { output = true, report = true,
    dashboard = true }, also = { filter = true, wait = true } },
  -- report lifecycle (sfreports.cli.lifecycle)
  create = { args = { "METADATA.json" }, scopes = { output = true } },
  clone = { args = { "REPORT_ID" }, scopes = { output = true, name = true } },
  save = { args = { "REPORT_ID" }, scopes = { output = true, change = true, name = true } },
  ["delete-report"] = { args = { "REPORT_ID" }, scopes = { confirm = true } },
  fields = { args = { "REPORT_ID" }, scopes = { output = true, intersect = true }, format = "table" },
  operators = { args = {}, scopes = { output = true }, format = "table" },
}
argv.COMMANDS = COMMANDS

-- arity: "flag" (no value), "value" (required), "optional" (only as --name=value);
-- many: repeatable (values collected in a list). scope "all" applies to every command.
local OPTIONS = {
  ["--org"] = { key = "org", arity = "value", scope = "all" },
  ["--api-version"] = { key = "api_version", arity = "value", scope = "all" },
  ["--timeout"] = { key = "timeout", arity = "value", scope = "all" },
  ["--retries"] = { key = "retries", arity = "value", scope = "all" },
  ["--stall-timeout"] = { key = "stall_timeout", arity = "value", scope = "all" },
  ["--quiet"] = { key = "quiet", arity = "flag", scope = "all" },
  ["--verbose"] = { key = "verbose", arity = "flag", scope = "all" },
  ["-v"] = { key = "verbose", arity = "flag", scope = "all" },
  ["--trace-json"] = { key = "trace_json", arity = "value", scope = "all" },
  ["-q"] = { key = "quiet", arity = "flag", scope = "all" },
  ["--help"] = { key = "help", arity = "flag", scope = "all" },
  ["-h"] = { key = "help", arity = "flag", scope = "all" },
  ["--version"] = { key = "version", arity = "flag", scope = "all" },
  ["--progress"] = { key = "progress", arity = "flag", scope = "wait" },
  ["--delete-on-interrupt"] = { key = "delete_on_interrupt", arity = "flag", scope = "wait" },
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
  ["--all"] = { key = "all", arity = "flag", scope = "run", shape = true },
  ["--wait"] = { key = "wait", arity = "flag", scope = "fetch" },
  ["--component"] = { key = "component", arity = "value", scope = "dashboard" },
  ["--running-user"] = { key = "running_user", arity = "value", scope = "dashboard" },
  -- aggregates and the report lifecycle (sfreports.cli.lifecycle)
  ["--aggregate"] = { key = "aggregate", arity = "value", many = true, scope = "change" },
  ["--replace-aggregates"] = { key = "replace_aggregates", arity = "optional", scope = "change" },
  ["--groups"] = { key = "groups", arity = "flag", scope = "report" },
  ["--name"] = { key = "name", arity = "value", scope = "name" },
  ["--folder"] = { key = "folder", arity = "value", scope = "name" },
  ["--yes"] = { key = "yes", arity = "flag", scope = "confirm" },
  ["-y"] = { key = "yes", arity = "flag", scope = "confirm" },
  ["--intersect"] = { key = "intersect", arity = "value", scope = "intersect" },
  -- the first hour (issue 23): output shape, paging key, grids, profiles
  ["--no-header"] = { key = "no_header", arity = "flag", scope = "output", shape = true },
  ["--delimiter"] = { key = "delimiter", arity = "value", scope = "output", shape = true },
  ["--bom"] = { key = "bom", arity = "flag", scope = "output", shape = true },
  ["--limit"] = { key = "limit", arity = "value", scope = "output", shape = true },
  ["--subtotals"] = { key = "groups", arity = "flag", scope = "report" },
  ["--grid"] = { key = "grid", arity = "optional", scope = "report", shape = true },
  ["--key"] = { key = "key", arity = "value", scope = "run", shape = true },
  ["--profile"] = { key = "profile", arity = "value", scope = "all" },
}
argv.OPTIONS = OPTIONS

argv.FORMATS = { csv = true, tsv = true, json = true, jsonl = true, table = true, xlsx = true }
-- xlsx is a workbook of report rows: only for the commands that write a report's rows
-- (and `export`, which writes nothing else)
local XLSX_COMMANDS = { run = true, fetch = true, query = true, export = true }

-- Whether the parsed options o hold any of the "change" options (what sfreports.cli.syntax
-- turns into run options: filters, dates, sorting, top, columns).
function argv.changes(o)
  for _, spec in pairs(OPTIONS) do
    if spec.scope == "change" and o[spec.key] ~= nil then return true end
  end
  return false
end

-- Whether o holds an option whose checks are sfreports.cli.shape's (`shape = true` in
-- OPTIONS): without one, that module is not loaded at all.
function argv.shaped(o)
  for _, spec in pairs(OPTIONS) do
    if spec.shape and o[spec.key] ~= nil then return true end
  end
  return false
end

-- A usage error travels as this table through error() inside parsing helpers.
local UsageError = {}
UsageError.__index = UsageError

function argv.usage_error(msg)
  error(setmetatable({ message = msg }, UsageError), 0)
end

local usage_error = argv.usage_error

-- A report, instance or folder id on the command line: a usage error when malformed.
function argv.check_id(id, what)
  local ok, why = require("sfreports.ids").check(id, what)
  if not ok then usage_error(why) end
end

function argv.is_usage_error(e)
  return getmetatable(e) == UsageError
end

-- True for option names that would carry a secret.
local function is_secret_option(name)
  local l = lower(name)
  return find(l, "token", 1, true) ~= nil or find(l, "password", 1, true) ~= nil
    or find(l, "secret", 1, true) ~= nil or l == "--sid" or l == "--session-id"
end

-- Splits argv into options (by key) and positional arguments. Raises usage errors.
function argv.parse(args)
  local o, positional, seen = {}, {}, {}
  local i, n = 1, #args
  local only_positional = false
  while i <= n do
    local a = args[i]
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
        value = args[i]
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

-- A number of seconds (finite, > 0) or a usage error naming the option.
local function seconds(value, option, example)
  local t = tonumber(value)
  if not t or t <= 0 or t ~= t or t == math.huge then
    usage_error(format("%s %q: expected a number of seconds, e.g. %s", option, value, example))
  end
  return t
end

-- Checks the options against the command. Returns the checked values: { format =,
-- timeout =, retries =, stall_timeout = } (nil when not given). Raises usage errors.
function argv.check(o, command, seen)
  local spec = COMMANDS[command]
  for _, name in pairs(seen) do
    local opt = OPTIONS[name]
    if opt.scope ~= "all" and not spec.scopes[opt.scope] and not (spec.also and spec.also[opt.key]) then
      usage_error(format("option %s does not apply to `sfreports %s`", name, command))
    end
  end
  if o.format ~= nil and not argv.FORMATS[o.format] then
    usage_error(format("--format %q: expected csv, tsv, json, jsonl, table or xlsx", o.format))
  end
  if o.format == "xlsx" and not XLSX_COMMANDS[command] then
    usage_error(format("--format xlsx writes report rows: it applies to run, fetch, query and export,"
      .. " not `sfreports %s`", command))
  end
  if command == "export" and o.format ~= nil and o.format ~= "xlsx" then
    usage_error("`sfreports export` writes Salesforce's formatted .xlsx; for other formats use `sfreports run`")
  end
  local checked = { format = o.format or spec.format }
  if o.timeout ~= nil then checked.timeout = seconds(o.timeout, "--timeout", "300") end
  if o.stall_timeout ~= nil then checked.stall_timeout = seconds(o.stall_timeout, "--stall-timeout", "30") end
  if o.retries ~= nil then
    local n = tonumber(o.retries)
    if not n or n < 0 or n > 100 or n ~= floor(n) then
      usage_error(format("--retries %q: expected a whole number from 0 to 100, e.g. 3", o.retries))
    end
    checked.retries = n
  end
  if o.org ~= nil and o.org == "" then usage_error("--org needs an alias") end
  if o.profile ~= nil and o.profile == "" then usage_error("--profile needs a profile name") end
  if o.trace_json ~= nil and o.trace_json == "" then
    usage_error("--trace-json needs a file name (- for standard error)")
  end
  return checked
end

return argv
