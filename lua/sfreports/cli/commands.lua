-- sfreports.cli.commands: the commands of `sfreports`: run here (the one most runs of the
-- program use), the others loaded when one of them is asked for. Each command checks its
-- arguments (usage errors), then gets the client (after checking the output), then
-- writes through sfreports.cli.output.
local Session = require "sfreports.cli.output"
local argv = require "sfreports.cli.argv"

local type, tostring = type, tostring
local setmetatable = setmetatable
local format = string.format

local EXIT = Session.EXIT
local usage_error, check_report_id = argv.usage_error, argv.check_id

---------------------------------------------------------------------------------------
-- commands

local commands = {}

function commands.run(s, args)
  local o = s.o
  check_report_id(args[1], "report id")
  local ropts = Session.run_options(o)
  s:check_output()
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
    s.on_row = require("sfreports.cli.progress").paging(s, report)
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
    report, err = require("sfreports.cli.progress").wait(s, client, inst)
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
