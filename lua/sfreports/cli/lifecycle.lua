-- sfreports.cli.lifecycle: the commands that change reports (create, clone, save,
-- delete-report) or list what a report can use (fields, operators). sfreports.cli.commands
-- takes these functions as its own (loaded when one of them runs).
local Session = require "sfreports.cli.output"
local argv = require "sfreports.cli.argv"
local syntax = require "sfreports.cli.syntax"

local type, ipairs, pairs, tostring, pcall, next = type, ipairs, pairs, tostring, pcall, next
local format = string.format
local sort = table.sort

local EXIT = Session.EXIT
local usage_error = argv.usage_error

local lifecycle = {}

local check_report_id = argv.check_id

-- A report's describe (from create, clone, save): its id on stdout (so that
-- `id=$(sfreports clone ...)` works) and a note, or with --format json the whole describe.
local function print_saved(s, d, verb)
  local md = type(d) == "table" and type(d.reportMetadata) == "table" and d.reportMetadata or {}
  if s.o.format == "json" then
    local out, oerr = s:open_output()
    if not out then return s:fail(oerr) end
    local json = require "sfreports.json"
    local ok, werr = out:write(json.encode(json.mark_arrays(d), { pretty = true }), "\n")
    if not ok then return s:fail("cannot write the output: " .. tostring(werr)) end
    local cok, cerr = s:close_output()
    if not cok then return s:fail("cannot write the output: " .. tostring(cerr)) end
  elseif s.o.format ~= nil then
    usage_error(format("--format %s: this command prints the report id, or with --format json its describe",
      s.o.format))
  else
    s.stdout:write(tostring(md.id), "\n")
  end
  s:note(format("%s report %s (%s)", verb, tostring(md.id), tostring(md.name)))
  return EXIT.OK
end

-- Reads a metadata file (- is standard input) as a table, or fails.
local function read_metadata(s, path)
  local text, rerr = s:read_input(path)
  if not text then return nil, rerr end
  local ok, core = pcall(require, "sfreports.core")
  if not ok then return nil, require("sfreports.cli.session").build_hint(core) end
  local md = core.decode(text)
  if type(md) ~= "table" then return nil, path .. " is not a JSON object" end
  return require("sfreports.json").mark_arrays(md)
end

lifecycle.create = function(s, args)
  local md, rerr = read_metadata(s, args[1])
  if not md then return s:fail(rerr) end
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local d, err = client:create_report(md)
  if not d then return s:fail_err(err) end
  return print_saved(s, d, "created")
end

lifecycle.clone = function(s, args)
  check_report_id(args[1], "report id")
  if type(s.o.name) ~= "string" or s.o.name == "" then
    usage_error("clone needs --name NAME (the new report's name)")
  end
  if s.o.folder then check_report_id(s.o.folder, "folder id") end
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local d, err = client:clone_report(args[1], { name = s.o.name, folder = s.o.folder })
  if not d then return s:fail_err(err) end
  return print_saved(s, d, "cloned " .. args[1] .. " as")
end

lifecycle.save = function(s, args)
  check_report_id(args[1], "report id")
  local changes = syntax.run_options(s.o)
  if s.o.folder then check_report_id(s.o.folder, "folder id") end
  changes.name, changes.folder = s.o.name, s.o.folder
  if next(changes) == nil then
    usage_error("save needs changes: --filter, --columns, --aggregate, --sort, --name... (see sfreports help save)")
  end
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local d, err = client:save_report(args[1], changes)
  if not d then return s:fail_err(err) end
  return print_saved(s, d, "saved")
end

-- True when standard input is a terminal (io_streams.stdin_tty overrides the check).
local function stdin_tty(s)
  if s.stdin_tty ~= nil then return s.stdin_tty end
  if s.stdin ~= io.stdin then return false end
  local a, _, c = os.execute("test -t 0")
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

lifecycle["delete-report"] = function(s, args)
  check_report_id(args[1], "report id")
  if not s.o.yes then
    if not stdin_tty(s) then
      usage_error("delete-report deletes the report for good: give --yes (standard input is not a terminal to ask on)")
    end
    s.stderr:write(format("sfreports: delete report %s for good? Its results and schedule go with it. [y/N] ", args[1]))
    local answer = s.stdin:read("*l")
    if not (answer and (answer:lower() == "y" or answer:lower() == "yes")) then
      s.stderr:write("sfreports: not deleted\n")
      return EXIT.FAILURE
    end
  end
  local client, cerr = s:client()
  if not client then return s:fail(cerr) end
  local ok, err = client:delete_report(args[1])
  if not ok then return s:fail_err(err) end
  s:note("deleted report " .. args[1])
  return EXIT.OK
end

lifecycle.fields = function(s, args)
  check_report_id(args[1], "report id")
  local with
  if s.o.intersect then
    with = {}
    for item in (s.o.intersect .. ","):gmatch("([^,]*),") do
      item = item:match("^%s*(.-)%s*$")
      check_report_id(item, "report id in --intersect")
      with[#with + 1] = item
    end
  end
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local f, err = client:report_fields(args[1], { intersect_with = with })
  if not f then return s:fail_err(err) end
  local groups = (with and type(f.mergedGroups) == "table" and f.mergedGroups) or f.displayGroups
  local records = {}
  for _, g in ipairs(type(groups) == "table" and groups or {}) do
    local cols = type(g) == "table" and type(g.columns) == "table" and g.columns or {}
    local names = {}
    for name in pairs(cols) do names[#names + 1] = name end
    sort(names)
    for _, name in ipairs(names) do
      local info = type(cols[name]) == "table" and cols[name] or {}
      records[#records + 1] = { name = name, label = info.label, type = info.dataType, group = g.label }
    end
  end
  return s:write_records({ { name = "name" }, { name = "label" }, { name = "type" }, { name = "group" } }, records)
end

lifecycle.operators = function(s)
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local map, err = client:filter_operators()
  if not map then return s:fail_err(err) end
  local types = {}
  for t in pairs(map) do types[#types + 1] = t end
  sort(types)
  local records = {}
  for _, t in ipairs(types) do
    for _, op in ipairs(type(map[t]) == "table" and map[t] or {}) do
      if type(op) == "table" then records[#records + 1] = { type = t, operator = op.name, label = op.label } end
    end
  end
  return s:write_records({ { name = "type" }, { name = "operator" }, { name = "label" } }, records)
end

return lifecycle
