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
-- Exit status: 0 success, 1 failure, 2 usage error, 3 rows written from a truncated report,
-- 130 interrupted (Ctrl-C).
--
-- The parts, in sfreports/cli/: help (texts), argv (commands, options, parsing), syntax
-- (filter, date, sort... values into run options), session (messages and their
-- scrubbing, credentials, the atomic output file), output (rows and records through
-- sfreports.writers), commands (one function per command, the async wait).
--
-- Everything the user types is checked before any request, so that a typo costs no API
-- call and gets exit status 2; what only the org can judge (an unknown column, an
-- operator a column does not offer) comes back from the library as a failure (status 1).
-- The library (and its C core) is loaded lazily: `--help` works without a build.
local argv = require "sfreports.cli.argv"
-- the help texts and the syntax of the "change" options are loaded when needed
local function help() return require "sfreports.cli.help" end

local pcall, ipairs, type, tostring, require = pcall, ipairs, type, tostring, require
local format, concat, find = string.format, table.concat, string.find

local cli = {}

-- The session with its output methods (sfreports.cli.output adds them); the commands
-- module is loaded with it. Neither loads the library: that happens on first use.
local function session_module()
  require "sfreports.cli.commands"
  return require "sfreports.cli.session"
end

cli.EXIT = { OK = 0, FAILURE = 1, USAGE = 2, TRUNCATED = 3, INTERRUPTED = 130 }
local EXIT = cli.EXIT

cli.USAGE = argv.USAGE
cli.COMMANDS = argv.COMMANDS
cli.OPTIONS = argv.OPTIONS
function cli.parse_filter(spec) return require("sfreports.cli.syntax").parse_filter(spec) end
function cli.run_options(o) return require("sfreports.cli.syntax").run_options(o) end

local usage_error = argv.usage_error

local function dispatch(s, positional, seen)
  local o = s.o
  if o.version then
    s.stdout:write(help().version_text(), "\n")
    return EXIT.OK
  end
  local command = positional[1]
  if command == "help" or (command == nil and o.help) then return help().show(s, positional) end
  if command == nil then usage_error("a command is needed") end
  local spec = argv.COMMANDS[command]
  if not spec then
    usage_error(format("unknown command %q%s; commands: %s", command, help().suggestion(command),
      help().COMMAND_NAMES))
  end
  if o.help then
    s.stdout:write(help().COMMANDS[command])
    return EXIT.OK
  end
  s.command = command -- a usage error now shows this command's usage
  local args = {}
  for i = 2, #positional do args[i - 1] = positional[i] end
  -- a report may be given by its URL (Lightning or Classic): sfreports.cli.shape
  if spec.args[1] == "REPORT_ID" and args[1] and find(args[1], "://", 1, true) then
    args[1] = require("sfreports.cli.shape").report_id(args[1])
  end
  if #args > #spec.args or #args < (spec.min_args or #spec.args) then
    usage_error(format("`sfreports %s` takes %s, got %d argument%s", command,
      #spec.args == 0 and "no arguments" or concat(spec.args, " "), #args, #args == 1 and "" or "s"))
  end
  s.checked = argv.check(o, command, seen)
  if argv.shaped(o) then require("sfreports.cli.shape").check(o, s.checked) end -- --no-header, --limit...
  s.format, s.timeout = s.checked.format, s.checked.timeout
  return require("sfreports.cli.commands")[command](s, args)
end

local function usage_exit(s, msg)
  s.stderr:write("sfreports: ", s:scrub(msg), "\n", help().usage_of(s.command), "\n")
  return EXIT.USAGE
end

-- Ctrl-C: nothing is left under the -o name; an asynchronous run that was being waited
-- for is named (or deleted, with --delete-on-interrupt), since it goes on on the server.
local function interrupted(s)
  s:discard_output()
  local p = s.pending
  if not p then
    s.stderr:write("sfreports: interrupted\n")
    return EXIT.INTERRUPTED
  end
  local rid, iid = tostring(p.report_id), tostring(p.id)
  if s.o.delete_on_interrupt and s._client then
    local ok, done, err = pcall(s._client.delete_instance, s._client, rid, iid)
    if ok and done then
      s.stderr:write(format("sfreports: interrupted; deleted the asynchronous run %s of report %s\n", iid, rid))
      return EXIT.INTERRUPTED
    end
    s.stderr:write(s:scrub(format("sfreports: interrupted; could not delete the asynchronous run %s: %s",
      iid, ok and s.describe_error(err) or s.raised_message(done))), "\n")
  end
  s.stderr:write(format("sfreports: interrupted; the asynchronous run %s of report %s goes on on the server:"
    .. " get its rows with `sfreports fetch %s %s --wait`, or delete it with `sfreports delete %s %s`\n",
    iid, rid, rid, iid, rid, iid))
  return EXIT.INTERRUPTED
end

-- Runs the command line. Returns the exit status (see the header of this file).
function cli.main(args, env, io_streams)
  local Session = session_module()
  local s = Session.new(env, io_streams or {})
  -- the command, for the usage shown after an error found while parsing the options
  for _, a in ipairs(args or {}) do
    if type(a) == "string" and argv.COMMANDS[a] then s.command = a break end
    if a == "--" then break end
  end
  local ok, status = pcall(function()
    local o, positional, seen = argv.parse(args or {})
    s.o = o
    return dispatch(s, positional, seen)
  end)
  if (not ok and Session.is_interrupt(status)) or s.interrupted then status = interrupted(s)
  elseif not ok and argv.is_usage_error(status) then status = usage_exit(s, status.message)
  elseif not ok then
    -- a raised error is a bug (or a misuse the checks above missed): say so, without a trace
    s.stderr:write("sfreports: internal error: ", s:scrub(tostring(status)), "\n")
    status = EXIT.FAILURE
  end
  s:discard_output() -- a run that did not finish its output leaves -o FILE alone
  if s._client then pcall(s._client.close, s._client) end
  if s._trace_file then require("sfreports.cli.trace").close(s) end
  return status
end

return cli
