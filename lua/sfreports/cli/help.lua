-- sfreports.cli.help: the help texts of the `sfreports` command (the overview and each
-- command's options and examples; docs/cli.md says the same at more length), and what is
-- printed with them: `help`, the version line, a command's usage lines after a usage
-- error, and a suggestion for a mistyped command. Loaded only when one of them is printed.
local argv = require "sfreports.cli.argv"

local help = {}

help.USAGE = argv.USAGE

help.MAIN = [[
sfreports: run Salesforce reports from the command line (Reports and Dashboards REST API).

usage: sfreports COMMAND [ARGUMENTS] [OPTIONS]

Commands:
  run REPORT_ID                 run a report and write its rows (CSV unless --format)
  export REPORT_ID -o FILE      Salesforce's formatted .xlsx of a run (the Export button)
  describe REPORT_ID            the report's metadata as JSON (--format table: its columns)
  instances REPORT_ID           the report's asynchronous runs
  fetch REPORT_ID INSTANCE_ID   write the rows of an asynchronous run
  delete REPORT_ID INSTANCE_ID  delete an asynchronous run
  list                          recently viewed reports
  query METADATA.json           run report metadata without saving a report (- reads stdin)
  types                         report types, by category
  dashboard list|show|status|refresh [ID]   dashboards: components, rows, refresh
  create METADATA.json          create a report from reportMetadata; prints its id
  clone REPORT_ID --name NAME   copy a report under a new name; prints the copy's id
  save REPORT_ID [CHANGES]      save filters, columns, aggregates, sort... into a report
  delete-report REPORT_ID       delete a report (asks first on a terminal; --yes)
  fields REPORT_ID              the fields a report can use (--intersect ID,...)
  operators                     filter operators per data type
  help [COMMAND]                this text, or a command's options and examples

Credentials:
  SF_INSTANCE_URL and SF_ACCESS_TOKEN (and optionally SF_API_VERSION) from the environment,
  or --org ALIAS to use a login of the Salesforce CLI (`sf org login web -a ALIAS`).
  An access token is never accepted on the command line (it would show in `ps` and in
  shell history).

Profiles: named orgs in $XDG_CONFIG_HOME/sfreports/config (else ~/.config/sfreports/config):
  [prod]                      [ci]
  flow = sf_cli               flow = client_credentials   (or token, refresh_token, password, jwt)
  alias = acme-prod           login_url = https://acme.my.salesforce.com
                              client_id = 3MVG9...
                              client_secret_env = CI_SECRET   (secrets: NAME_env or NAME_file;
                                                              plain text only with plaintext_secrets = yes
                                                              in a file only you can read)
  then: sfreports run REPORT_ID --profile ci   (or SFREPORTS_PROFILE=ci)

Options for every command:
  --org ALIAS          use the Salesforce CLI login ALIAS instead of SF_* variables
  --profile NAME       use the named org of the config file (see Profiles)
  --api-version V      API version (default: SF_API_VERSION, else the library's)
  --timeout SECONDS    budget of the whole command: every request, retry, wait and page
  --retries N          how many times a failed request is tried again (default: the
                       library's; 0 never retries)
  --stall-timeout S    give up on a response that sends nothing for S seconds
  --format FORMAT      csv, tsv, json, jsonl, table (aligned columns for a terminal;
                       table reads all rows before printing, to measure the columns)
                       or xlsx (an Excel workbook, typed cells: needs -o FILE or -o -
                       onto a pipe; run, fetch and query)
  -o, --output FILE    write to FILE instead of standard output (- is standard output);
                       FILE is replaced only when the command succeeds
  --no-header          csv, tsv, table: no header line
  --delimiter C        csv: another field separator (";", "|", tab)
  --bom                csv, tsv: start with a UTF-8 byte order mark (Excel reads UTF-8 then)
  --limit N            only the first N rows (cut here: without a sort; --top N needs one)
  -q, --quiet          no progress or notes on standard error (errors still appear)
  -v, --verbose        one line per HTTP exchange on standard error (method, path,
                       status, ms, bytes, attempt; never a token)
  --trace-json FILE    the same as JSON lines, appended to FILE (- is standard error)
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
  130  interrupted (Ctrl-C); no output file is written
]]

help.COMMANDS = {
  run = [[
usage: sfreports run REPORT_ID [OPTIONS]
       (REPORT_ID may be the report's URL: https://DOMAIN.lightning.force.com/lightning/r/Report/00O.../view)

Runs a saved report and writes its detail rows as they are produced: CSV by default
(one header line of grouping then detail column labels, one line per row).

Output:
  --format FORMAT       csv (default), tsv, json (an array of objects), jsonl (one
                        object per line), table (aligned; reads all rows first) or
                        xlsx (a workbook with typed cells, written as rows arrive:
                        needs -o FILE, or -o - onto a pipe; works with --all)
  --raw                 values instead of display labels (350000 rather than "$350,000.00")
  --formula-guard       CSV/TSV: prefix fields starting with = + - @ with ' (spreadsheets)
  -o, --output FILE     write to FILE (written to a temporary file next to it, renamed
                        only on success: a failed or interrupted run leaves FILE alone)
  --no-header           csv, tsv, table: no header line
  --delimiter C         csv: separate fields with C (";" "|" or tab); fields holding C are quoted
  --bom                 csv, tsv: a UTF-8 byte order mark first (Excel opens the file as UTF-8)
  --limit N             write only the first N rows, exit 0. Salesforce's own row limit (--top)
                        needs a sort; --limit does not: the run returns up to 2,000 rows and
                        the first N are written (with --all, paging stops after N rows)

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
  --aggregate AGG       add an aggregate (repeatable): sum(AMOUNT), avg(COL), min(COL),
                        max(COL), unique(COL), RowCount, or the API's s!AMOUNT, a!, m!, x!, u!
  --replace-aggregates[=AGG,...]  drop the saved aggregates (all, or those listed; a
                        column name drops every saved aggregate on it)
  --groups, --subtotals write the aggregates instead of the rows: one line per group,
                        subtotal and grand total, headed by the aggregate labels
  --grid[=AGG]          summary/matrix: one aggregate as a grid: a line per down group
                        (subtotals, total last), a column per across group and Total
                        (AGG: s!AMOUNT, RowCount, a label or a number; default the first)

Running:
  --async               run as an asynchronous instance and wait for it, with progress
                        on standard error (see --progress, --quiet)
  --no-wait             start an asynchronous run, print its instance id and exit
                        (then: sfreports fetch REPORT_ID INSTANCE_ID)
  --timeout SECONDS     budget of the whole command (requests, retries, the wait, pages)
  --delete-on-interrupt with --async: delete the asynchronous run when Ctrl-C stops the wait
                        (without it, the message names the fetch and delete commands)
  --all                 page past the 2,000-row limit (several runs, each split by a filter;
                        on a terminal, or with --progress, a progress line on standard error)
  --key COLUMN[,COLUMN]  with --all: the columns to split on (a date, number, percent or
                        currency column; by default the report's most varied one)

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
  sfreports run 00OFk00000B0001MAB --aggregate "avg(AMOUNT)" --aggregate "max(AMOUNT)" --groups
  sfreports run 00OFk00000C0001MAB --grid --format table
  sfreports run https://acme.lightning.force.com/lightning/r/Report/00OFk00000A0001MAB/view \
      --delimiter ";" --bom -o pipeline.csv
]],
  export = [[
usage: sfreports export REPORT_ID -o FILE [OPTIONS]

Writes Salesforce's own formatted Excel export of a run (what the Export button gives:
its layout, its formatting) to FILE, streamed as it arrives: a temporary file next to
FILE is renamed over it only when the whole file is in. -o - writes it to standard
output, which must not be a terminal. Takes the run options of `run` (--filter, --logic,
--replace-filters, --date, --from/--to, --date-column, --sort, --top, --columns).
Salesforce advises against several large formatted exports at a time.
For a workbook built here from the rows (every row with --all, typed cells, one sheet
per view), use `sfreports run REPORT_ID --format xlsx -o FILE`.

Examples:
  sfreports export 00OFk00000A0001MAB -o pipeline.xlsx
  sfreports export 00OFk00000A0001MAB --filter "AMOUNT > 10000" -o - | gzip > pipeline.xlsx.gz
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
  dashboard = [[
usage: sfreports dashboard list
       sfreports dashboard show DASHBOARD_ID [--filter "FILTER=OPTION"]... [--running-user USER_ID]
                                [--component ID|TITLE] [--format F] [-o FILE|DIR] [--raw]
       sfreports dashboard status DASHBOARD_ID
       sfreports dashboard refresh DASHBOARD_ID [--wait] [--timeout SECONDS] [show's options]

list     recently used dashboards: id, name, url (default format table)
show     without --component: a summary of the components: title, id, type, status, rows,
         error (default format table). With -o DIR, each component's rows also go to a
         file in DIR (NN-title.csv, or the --format's extension), written atomically.
         With --component (an id, or a title in any case): that component's rows in
         --format (default csv), to -o FILE or standard output: its detail rows, or, for
         a chart, metric or table of groups, one row per group with its aggregates.
status   each component's refresh status and date (default format table)
refresh  starts a refresh (a refresh already in progress is not an error); with --wait,
         waits for it (up to --timeout seconds) and then shows the dashboard like show

--filter "FILTER=OPTION"  a dashboard filter by its label or name, and one of its options
         by alias, label, value or id (repeatable, at most three filters; checked against
         the dashboard's metadata before the results are requested)
--running-user USER_ID   view the dashboard as that user (dashboards that allow it)

Exit status 1 when any component shown failed (each one is named on standard error).

Examples:
  sfreports dashboard list
  sfreports dashboard show 01ZFk00000G0001MAB --filter "Region=EMEA" --filter "Deal Size=Large"
  sfreports dashboard show 01ZFk00000G0001MAB --component "Open Deals" --format jsonl
  sfreports dashboard show 01ZFk00000G0001MAB -o sales/
  sfreports dashboard refresh 01ZFk00000G0001MAB --wait --timeout 300
]],
  create = [[
usage: sfreports create METADATA.json [--format json] [-o FILE]

Creates a report (POST analytics/reports) from {"reportMetadata": {...}} or the
reportMetadata object itself (name, reportType, reportFormat, detailColumns, groupingsDown,
aggregates, reportFilters...); - reads standard input. Prints the new report's id on
standard output (--format json: its whole describe) and a note on standard error.

Example:
  id=$(sfreports create pipeline.json)
]],
  clone = [[
usage: sfreports clone REPORT_ID --name NAME [--folder FOLDER_ID] [--format json]

Copies a report (POST analytics/reports?cloneId=REPORT_ID) under a new name, in the same
folder unless --folder. Prints the copy's id (--format json: its describe).

Example:
  copy=$(sfreports clone 00OFk00000A0001MAB --name "Pipeline (EMEA)")
  sfreports save "$copy" --filter "BILLING_COUNTRY = Germany,France"
]],
  save = [[
usage: sfreports save REPORT_ID [CHANGES] [--name NAME] [--folder FOLDER_ID] [--format json]

Saves changes into the report (PATCH analytics/reports/REPORT_ID): the options that change
a run -- --filter, --logic, --replace-filters, --date, --from/--to, --sort, --top,
--columns, --aggregate, --replace-aggregates -- checked against the report's describe
before anything is sent, plus --name and --folder. Prints the report id (--format json:
the saved describe). Salesforce deletes the report's running asynchronous runs when it
is saved.

Examples:
  sfreports save 00OFk00000A0001MAB --filter "STAGE_NAME = Closed Won" --aggregate "max(AMOUNT)"
  sfreports save 00OFk00000A0001MAB --name "Won deals" --replace-filters
]],
  ["delete-report"] = [[
usage: sfreports delete-report REPORT_ID [--yes]

Deletes a report for good. On a terminal it asks first; otherwise (a script) --yes is
required. A report that does not exist is a failure (exit status 1, HTTP 404).

Example:
  sfreports delete-report 00OFk00000A0001MAB --yes
]],
  fields = [[
usage: sfreports fields REPORT_ID [--intersect REPORT_ID,...] [--format table|csv|tsv|json|jsonl]

Lists the fields the report can use (POST analytics/reports/REPORT_ID/fields): name,
label, type, group. With --intersect, the fields it shares with those reports.

Example:
  sfreports fields 00OFk00000A0001MAB --format csv
]],
  operators = [[
usage: sfreports operators [--format table|csv|tsv|json|jsonl]

Lists the filter operators per data type (GET analytics/filteroperators): type,
operator (the API name --filter takes), label.
]],
  help = [[
usage: sfreports help [COMMAND]

Prints the overview, or the options and examples of COMMAND.
]],
}

---------------------------------------------------------------------------------------
-- what is printed with them

local pcall, pairs, tostring, rawget, require = pcall, pairs, tostring, rawget, require
local format = string.format
local usage_error = argv.usage_error
local EXIT_OK = 0 -- sfreports.cli.EXIT.OK

help.COMMAND_NAMES = "run export describe instances fetch delete list query types create clone save delete-report"
  .. " fields operators dashboard"

-- Edit distance (insertions, deletions, substitutions) between two short words.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- " (did you mean run?)" for a mistyped command (at most two edits away), else "".
function help.suggestion(word)
  local best, best_d = nil, 3
  for name in pairs(argv.COMMANDS) do
    local d = distance(word:lower(), name)
    if d < best_d or (d == best_d and best and name < best) then best, best_d = name, d end
  end
  return best and (" (did you mean " .. best .. "?)") or ""
end

-- The line of --version: the library's version and the interpreter's.
function help.version_text()
  local ok, sfreports = pcall(require, "sfreports")
  local v = ok and sfreports.VERSION or "(library not built)"
  local rt = rawget(_G, "jit") and rawget(_G, "jit").version or _VERSION
  return format("sfreports %s (%s)", tostring(v), tostring(rt))
end

-- `sfreports help [COMMAND]` (or --help): the overview, or one command's text.
function help.show(s, positional)
  local topic = positional[2]
  if positional[3] then usage_error("help takes one command name") end
  if topic == nil then
    s.stdout:write(help.MAIN)
    return EXIT_OK
  end
  if not help.COMMANDS[topic] then usage_error(format("no command %q; commands: %s", topic, help.COMMAND_NAMES)) end
  s.stdout:write(help.COMMANDS[topic])
  return EXIT_OK
end

-- The usage lines of a command's help (up to its first blank line), else the general one.
function help.usage_of(command)
  local text = command and help.COMMANDS[command]
  if not text then return help.USAGE end
  local lines = text:match("^(usage:.-)\n\n") or text:match("^(usage:[^\n]*)")
  return (lines or help.USAGE) .. "\n(sfreports help " .. command .. " for its options and examples)"
end

return help
