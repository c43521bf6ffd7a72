-- sfreports.cli.commands: the commands of `sfreports`: run here (the one most runs of the
-- program use), the others loaded when one of them is asked for; and the wait for an
-- asynchronous run with its progress line. Each command checks its arguments (usage errors), then gets the client
-- (after checking the output), then writes through sfreports.cli.output.
local Session = require "sfreports.cli.output"
local argv = require "sfreports.cli.argv"

local type, tostring, pcall, error = type, tostring, pcall, error
local setmetatable = setmetatable
local format = string.format

local EXIT = Session.EXIT
local usage_error, check_report_id = argv.usage_error, argv.check_id

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

local commands = {}
local function run_options(o) return Session.run_options(o) end
local function check_output(s) return s:check_output() end

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

-- dashboard list | show | status | refresh (sfreports.cli.dashboard)
function commands.dashboard(s, args)
  return require("sfreports.cli.dashboard").run(s, args)
end
-- The other commands, loaded when one of them runs: fetch, query, describe, instances,
-- delete, list, types, export (sfreports.cli.inspect), and the report lifecycle (create,
-- clone, save, delete-report, fields, operators: sfreports.cli.lifecycle).
local INSPECT = { fetch = true, query = true, describe = true, instances = true, delete = true, list = true,
  types = true, export = true }
setmetatable(commands, { __index = function(_, name)
  if INSPECT[name] then return require("sfreports.cli.inspect")[name] end
  return require("sfreports.cli.lifecycle")[name]
end })

return commands
