-- sfreports.cli.commands: the commands of `sfreports` (run, fetch, query, describe,
-- instances, delete, list, types), and the wait for an asynchronous run with its
-- progress line. Each command checks its arguments (usage errors), then gets the client
-- (after checking the output), then writes through sfreports.cli.output.
local Session = require "sfreports.cli.output"
local argv = require "sfreports.cli.argv"

-- The client run options the "change" options ask for; {} without any, and then
-- sfreports.cli.syntax (which parses them) is not loaded at all.
local function run_options(o)
  if not argv.changes(o) then return {} end
  return require("sfreports.cli.syntax").run_options(o)
end

local type, ipairs, pairs, tostring, pcall, error = type, ipairs, pairs, tostring, pcall, error
local setmetatable = setmetatable
local format = string.format

local EXIT = Session.EXIT
local usage_error = argv.usage_error

---------------------------------------------------------------------------------------
-- waiting for an asynchronous run, with progress

function Session:progress_fn()
  local o = self.o
  if o.quiet then return nil end
  local tty = self:is_tty()
  if not (tty or o.progress) then return nil end
  local stderr = self.stderr
  return function(inst, elapsed, final)
    local polls = inst.polls or 0
    -- the status comes from the server: scrubbed like every message
    local line = self:scrub(format("sfreports: instance %s %s, %.1fs, %d poll%s", tostring(inst.id),
      tostring(inst.status), elapsed, polls, polls == 1 and "" or "s"))
    if tty then
      stderr:write("\r", line, "\027[K", final and "\n" or "")
    else
      stderr:write(line, "\n")
    end
  end
end

-- The progress of --all on a terminal (or with --progress): one line, rewritten in place
-- on a terminal, updated when a page arrives: "sfreports: --all: 4,000 rows, 3 pages, 4
-- report runs, 2.1 s". A function(final) for Session:write_rows, or nil (not a terminal,
-- --quiet). Nothing of it reaches standard output.
function Session:paging_progress(paged)
  local o = self.o
  if o.quiet or type(paged) ~= "table" or type(paged.stats) ~= "table" then return nil end
  local tty = self:is_tty()
  if not (tty or o.progress) then return nil end
  local stderr, core = self.stderr, require "sfreports.core"
  local clock = self.clock or core.monotime
  local start, last_pages, shown = clock(), -1, false
  local line_of = require("sfreports.cli.progress").line
  return function(final)
    local st = paged.stats
    if not final and st.pages == last_pages then return end
    last_pages = st.pages
    if final and not shown then return end
    shown = true
    local line = line_of(st.rows, st, paged.strategy, clock() - start)
    if tty then
      stderr:write("\r", line, "\027[K", final and "\n" or "")
    elseif not final then
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
  local opts = { timeout = self:time_left() } -- what is left of --timeout
  opts.sleep = function(seconds)
    if progress then progress(inst, clock() - start, false) end
    local ok, e = pcall(sleep, seconds)
    if not ok then
      -- Ctrl-C while sleeping: remembered here, whatever the library makes of the error
      if Session.is_interrupt(e) then self.interrupted = true end
      error(e, 0)
    end
  end
  -- while it waits, Ctrl-C names (or deletes) this instance: see cli.main
  self.pending = { report_id = inst.report_id, id = inst.id }
  local report, err = client:wait(inst, opts)
  self.pending = nil
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

-- --format xlsx needs a file or a pipe: checked before any request.
local function check_output(s)
  if s.format == "xlsx" then s:check_binary_output() end
end

function commands.run(s, args)
  local o = s.o
  check_report_id(args[1], "report id")
  local ropts = run_options(o)
  check_output(s)
  if o.no_wait then
    if o.all then usage_error("--no-wait cannot be combined with --all") end
    if o.output or o.format or o.raw then
      usage_error("--no-wait writes only the instance id; --format, --raw and -o apply to `sfreports fetch`")
    end
  end
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local report, err
  if o.all then
    if type(client.run_all) ~= "function" then
      usage_error("--all needs paging past 2,000 rows, which this version of the sfreports"
        .. " library does not have; narrow the report with --filter instead")
    end
    if o.async then
      usage_error("--all pages with synchronous runs (one per 2,000 rows); drop --async")
    end
    if s.checked.key then ropts.key = s.checked.key end -- --key COLUMN[,COLUMN]
    report, err = client:run_all(args[1], ropts)
    if not report then return s:fail_err(err) end
    s.on_row = s:paging_progress(report)
    local status = s:write_report(report, true)
    if s.on_row then s.on_row(true) end
    if s.rows_written and not o.quiet and s:is_tty() then
      -- on a terminal: what the pull cost (rows, runs, time, API usage)
      local line = require("sfreports.cli.trace").summary(s.rows_written, client:usage())
      s.stderr:write("sfreports: ", s:scrub(line), "\n")
    end
    return status
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
  check_output(s)
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local report, err
  if s.o.wait then
    local async = require "sfreports.async"
    local inst = async.instance(client, args[1], { id = args[2], status = "Unknown" })
    report, err = s:wait(client, inst)
  else
    report, err = client:fetch_instance(args[1], args[2])
    if not report and type(err) == "table" and err.code == "INSTANCE_NOT_READY" then
      err = Session.describe_error(err) .. "; add --wait to wait for it"
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
  local ropts = run_options(s.o)
  check_output(s)
  local core_ok, core = pcall(require, "sfreports.core")
  if not core_ok then return s:fail(Session.build_hint(core)) end
  local md, derr = core.decode(text)
  if md == nil then return s:fail_err(derr, path .. " is not JSON") end
  if type(md) ~= "table" or (type(md.reportMetadata) ~= "table" and md.reportFormat == nil
      and md.detailColumns == nil) then
    return s:fail(path .. " holds no report metadata: expected {\"reportMetadata\": {...}} or the"
      .. " reportMetadata object")
  end
  md = require("sfreports.json").mark_arrays(md)
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local report, err = client:query(md, ropts)
  if not report then return s:fail_err(err) end
  return s:write_report(report, false)
end

function commands.describe(s, args)
  check_report_id(args[1], "report id")
  local client, cerr = s:ready()
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
  local client, cerr = s:ready()
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
  local client, cerr = s:ready()
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
  local client, cerr = s:ready()
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

-- Salesforce's formatted export (client:export): the .xlsx streamed into -o FILE's
-- temporary file (renamed when complete) or onto standard output (-o -, not a terminal).
function commands.export(s, args)
  check_report_id(args[1], "report id")
  local ropts = run_options(s.o)
  s:check_binary_output()
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  if type(client.export) ~= "function" then
    return s:fail("this version of the sfreports library has no formatted export (client:export)")
  end
  local to = s.o.output == "-" and s.stdout or s._file
  ropts.to = to
  local info, err = client:export(args[1], ropts)
  if not info then return s:fail_err(err) end
  local ok, werr = s:close_output()
  if not ok then return s:fail("cannot write the output: " .. tostring(werr)) end
  s:note(format("wrote %d bytes of Salesforce's formatted export%s", info.bytes,
    info.filename and (" (" .. info.filename .. ")") or ""))
  return EXIT.OK
end

-- dashboard list | show | status | refresh (sfreports.cli.dashboard)
function commands.dashboard(s, args)
  return require("sfreports.cli.dashboard").run(s, args)
end
-- the report lifecycle commands (create, clone, save, delete-report, fields, operators),
-- loaded when one of them runs
setmetatable(commands, { __index = function(_, name) return require("sfreports.cli.lifecycle")[name] end })

return commands
