-- sfreports.cli.inspect: the commands of `sfreports` besides run, dashboard and the report
-- lifecycle: fetch, query, describe, instances, delete, list, types and export (loaded by
-- sfreports.cli.commands when one of them runs). Each checks its arguments (usage
-- errors), then gets the client (after checking the output), then writes through
-- sfreports.cli.output.
local Session = require "sfreports.cli.output"
local argv = require "sfreports.cli.argv"

local type, ipairs, pairs, tostring, pcall = type, ipairs, pairs, tostring, pcall
local format = string.format

local EXIT = Session.EXIT
local check_report_id = argv.check_id

local commands = {}

function commands.fetch(s, args)
  check_report_id(args[1], "report id")
  check_report_id(args[2], "instance id")
  s:check_output()
  local client, cerr = s:ready()
  if not client then return s:fail(cerr) end
  local report, err
  if s.o.wait then
    local async = require "sfreports.async"
    local inst = async.instance(client, args[1], { id = args[2], status = "Unknown" })
    report, err = require("sfreports.cli.progress").wait(s, client, inst)
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
  local text, rerr = s:read_input(path)
  if not text then return s:fail(rerr) end
  local ropts = Session.run_options(s.o)
  s:check_output()
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
  local ropts = Session.run_options(s.o)
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

return commands
