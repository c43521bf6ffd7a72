-- sfreports.cli.dashboard: `sfreports dashboard list | show ID | status ID | refresh ID`.
--
--   show ID [--filter "Region=EMEA"]... [--running-user ID] [--component ID|TITLE]
--           [--format F] [-o FILE|DIR] [--raw] [--formula-guard]
--     without --component: a summary of the components (title, id, type, status, rows,
--     error) in --format (default table); with -o DIR, also one file per component in DIR
--     (--format of the files, default csv), each written atomically;
--     with --component: that component's rows (detail rows, else one row per group with
--     its aggregates) in --format (default csv), to -o FILE or standard output.
--   status ID     per-component refresh status (default table)
--   refresh ID [--wait] [--timeout S]   starts a refresh (or finds the one in progress);
--     with --wait, waits for it and then shows the dashboard as `show` does.
-- Exit status 1 when any component shown failed (each is named on standard error).
local Session = require "sfreports.cli.output"
local argv = require "sfreports.cli.argv"
local tmpname = require "sfreports.tmpname"

local pairs, ipairs, tostring, pcall, error = pairs, ipairs, tostring, pcall, error
local format, match, gsub, lower, sub = string.format, string.match, string.gsub, string.lower, string.sub

local EXIT = Session.EXIT
local usage_error = argv.usage_error

local M = {}

-- Which options each subcommand takes (beyond the ones of every command).
local ALLOWED = {
  list = { format = true, output = true },
  status = { format = true, output = true, filter = true, running_user = true },
  show = { format = true, output = true, filter = true, running_user = true, component = true, raw = true,
    formula_guard = true },
  refresh = { format = true, output = true, filter = true, running_user = true, component = true, raw = true,
    formula_guard = true, wait = true },
}
local COMMON = { org = true, api_version = true, timeout = true, retries = true, stall_timeout = true,
  quiet = true, help = true, version = true }

local EXT = { csv = "csv", tsv = "tsv", json = "json", jsonl = "jsonl", table = "txt" }

-- "Region=EMEA" -> "Region", "EMEA" (the label may hold spaces; the first = splits).
local function parse_filters(list)
  if not list then return nil end
  local out = {}
  for _, text in ipairs(list) do
    local label, option = match(text, "^%s*(.-)%s*=%s*(.-)%s*$")
    if not label or label == "" or option == "" then
      usage_error(format("--filter %q: a dashboard filter is FILTER=OPTION, e.g. --filter \"Region=EMEA\"", text))
    end
    if out[label] then usage_error(format("--filter: dashboard filter %q is given twice", label)) end
    out[label] = option
  end
  return out
end

local function check_options(s, sub_command)
  local allowed = ALLOWED[sub_command]
  for key in pairs(s.o) do
    if not COMMON[key] and not allowed[key] then
      usage_error(format("option --%s does not apply to `sfreports dashboard %s`", gsub(key, "_", "-"), sub_command))
    end
  end
end

local function check_id(id, prefix, what)
  local ids = require "sfreports.ids"
  local ok, why = ids.check_prefixed(id, prefix, what)
  if not ok then usage_error(why) end
end

-- The call options from the command line.
local function call_options(s)
  local opts = { filters = parse_filters(s.o.filter) }
  if s.o.running_user then
    check_id(s.o.running_user, "005", "--running-user")
    opts.running_user = s.o.running_user
  end
  return opts
end

---------------------------------------------------------------------------
-- writing

local function status_text(c)
  if c.error then return "ERROR" end
  return tostring(c.status.data_status or "?") .. (c.status.refresh_status == "RUNNING" and " (refreshing)" or "")
end

local function summary_records(d)
  local records = {}
  for i, c in ipairs(d.components) do
    local t = c:table()
    records[i] = { title = c.label, id = c.id, type = c.visualization or c.type, status = status_text(c),
      rows = t and t:row_count() or nil,
      error = c.error and (c.status.error_message or Session.describe_error(c.error)) or nil }
  end
  return records
end

local SUMMARY_FIELDS = { { name = "title" }, { name = "id" }, { name = "type" }, { name = "status" },
  { name = "rows", data_type = "int" }, { name = "error" } }

-- Names every failed component on standard error; returns how many failed.
local function report_failures(s, list)
  for _, c in ipairs(list) do
    s.stderr:write(s:scrub("sfreports: " .. Session.describe_error(c.error)), "\n")
  end
  return #list
end

local function slug(text)
  local t = lower(gsub(tostring(text), "[^%w]+", "-"))
  t = gsub(gsub(t, "^%-+", ""), "%-+$", "")
  if t == "" then t = "component" end
  return sub(t, 1, 40)
end

-- Writes one component's rows to path, atomically (a temporary file renamed over it; a
-- device or FIFO is written in place: see sfreports.tmpname).
local function write_file(s, c, path, fmt)
  local mode, final = tmpname.plan(path)
  local tmp = mode == "direct" and path or tmpname.next_to(final)
  if not tmp then return nil, "no temporary file name is free next to it" end
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local saved = s.format
  s.format = fmt
  local n, werr = s:write_rows(c:table(), f, s.o.raw)
  s.format = saved
  local ok, cerr = f:close()
  if n and ok and mode ~= "direct" then ok, cerr = os.rename(tmp, final) end
  if not (n and ok) then
    if mode ~= "direct" then os.remove(tmp) end
    return nil, werr or cerr
  end
  return n
end

-- -o DIR without --component: one file per component that has rows.
local function write_dir(s, d, dir)
  local fmt = s.format or "csv"
  local made = os.execute("mkdir -p '" .. gsub(dir, "'", "'\\''") .. "'")
  if made ~= 0 and made ~= true then return nil, "cannot create the directory " .. dir end
  for i, c in ipairs(d.components) do
    if c.report then
      local path = format("%s/%02d-%s.%s", gsub(dir, "/+$", ""), i, slug(c.label), EXT[fmt])
      local n, err = write_file(s, c, path, fmt)
      if not n then return nil, "cannot write " .. path .. ": " .. tostring(err) end
      s:note(format("wrote %s (%d row%s)", path, n, n == 1 and "" or "s"))
    end
  end
  return true
end

-- Shows a dashboard: a component's rows, or the summary (and files with -o DIR).
local function show(s, d)
  local o = s.o
  if o.component then
    local c = d:component(o.component)
    if not c then
      local names = {}
      for i, x in ipairs(d.components) do names[i] = format("%q (%s)", tostring(x.label), tostring(x.id)) end
      return s:fail(format("dashboard %s has no component %q; its components: %s", tostring(d.id), o.component,
        table.concat(names, ", ")))
    end
    if c.error then
      report_failures(s, { c })
      return EXIT.FAILURE
    end
    if not c.report then return s:fail(format("component %s (%s) has no data", tostring(c.id), tostring(c.label))) end
    s.format = s.format or "csv"
    return s:write_report(c:table(), false)
  end
  if o.output and o.output ~= "-" then
    local ok, err = write_dir(s, d, o.output)
    if not ok then return s:fail(err) end
    s.format, s.o.output = "table", nil
  end
  s.format = s.format or "table"
  local status = s:write_records(SUMMARY_FIELDS, summary_records(d))
  if status ~= EXIT.OK then return status end
  if report_failures(s, d:failed()) > 0 then return EXIT.FAILURE end
  return EXIT.OK
end

---------------------------------------------------------------------------
-- subcommands

local run = {}

function run.list(s)
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local list, err = client:dashboards()
  if not list then return s:fail_err(err) end
  s.format = s.format or "table"
  return s:write_records({ { name = "id" }, { name = "name" }, { name = "url" } }, list)
end

function run.status(s, id)
  local opts = call_options(s)
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local st, err = client:dashboard_status(id, opts)
  if not st then return s:fail_err(err) end
  s.format = s.format or "table"
  local records = {}
  for i, c in ipairs(st.components) do
    records[i] = { componentId = c.id, refreshStatus = c.refresh_status, refreshDate = c.refresh_date }
  end
  return s:write_records({ { name = "componentId" }, { name = "refreshStatus" }, { name = "refreshDate" } }, records)
end

-- The client for show/refresh: -o is a directory without --component, so it is not
-- reserved as a file then.
local function client_for_show(s)
  if s.o.component then return s:ready() end
  return s:client()
end

function run.show(s, id)
  local opts = call_options(s)
  local client, cerr = client_for_show(s)
  if not client then return s:fail(cerr) end
  local d, err = client:dashboard(id, opts)
  if not d then return s:fail_err(err) end
  return show(s, d)
end

function run.refresh(s, id)
  local o = s.o
  if not o.wait and (o.component or o.output or o.format or o.raw) then
    usage_error("--component, --format, -o and --raw apply to `sfreports dashboard refresh` with --wait")
  end
  local opts = call_options(s)
  local client, cerr = client_for_show(s)
  if not client then return s:fail(cerr) end
  local h, err = client:refresh_dashboard(id, opts)
  if not h then return s:fail_err(err) end
  if not o.wait then
    s:note(format("%s of dashboard %s; follow it with: sfreports dashboard status %s", h.already_running
      and "a refresh is already in progress" or "started a refresh", id, id))
    return EXIT.OK
  end
  local core = require "sfreports.core"
  local sleep = s.sleep or core.sleep
  local d, werr = h:wait({ timeout = s.timeout, sleep = function(seconds)
    local ok, e = pcall(sleep, seconds)
    if not ok then
      if Session.is_interrupt(e) then s.interrupted = true end
      error(e, 0)
    end
  end })
  if not d then return s:fail_err(werr) end
  s:note(format("dashboard %s refreshed (%d status check%s)", id, h.polls, h.polls == 1 and "" or "s"))
  return show(s, d)
end

function M.run(s, args)
  local sub_command, id = args[1], args[2]
  if not run[sub_command] then
    usage_error(format("unknown dashboard command %q; expected list, show ID, status ID or refresh ID",
      tostring(sub_command)))
  end
  check_options(s, sub_command)
  if sub_command == "list" then
    if id then usage_error("`sfreports dashboard list` takes no dashboard id") end
  else
    if not id then usage_error(format("`sfreports dashboard %s` needs a dashboard id", sub_command)) end
    check_id(id, "01Z", "dashboard id")
  end
  return run[sub_command](s, id)
end

return M
