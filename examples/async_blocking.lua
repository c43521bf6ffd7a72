-- examples/async_blocking.lua: asynchronous runs with the default sleep strategy, a
-- blocking sleep from the C core (fine in scripts, cron jobs and CLIs; inside OpenResty
-- ngx.sleep is chosen instead, see examples/nginx).
--
--   lua5.4 examples/async_blocking.lua [report_id ...]
--
-- With SF_INSTANCE_URL and SF_ACCESS_TOKEN set it runs the given reports on that org;
-- otherwise it starts the bundled fake org (instances there take 1 s, or
-- SFREPORTS_FAKE_DELAY seconds) and uses its reports.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = here .. "/?.lua;" .. here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;"
  .. here .. "/../spec/support/?.lua;" .. package.path
package.cpath = here .. "/../build/" .. runtime .. "/?.so;" .. package.cpath

local core = require "sfreports.core"

local function main(client, ids)
  -- One report: start it, then wait. Backoff grows with the run time; the deadline gives
  -- a `timeout` error that keeps the instance id.
  local inst = assert(client:run_async(ids[1]))
  print(("started %s (status %s)"):format(inst.id, inst.status))
  local t0 = core.monotime()
  local report, err = inst:wait({ timeout = 120, delete = "after" })
  if not report then
    print("failed: " .. tostring(err) .. (err.instance_id and (" (instance " .. err.instance_id .. ")") or ""))
  else
    print(("%s: %d rows after %.2f s and %d polls"):format(report.name, report:row_count(),
      core.monotime() - t0, inst.polls))
  end

  -- Many reports at once: every request in flight together from this one thread.
  local list = {}
  for i, id in ipairs(ids) do list[i] = { id = id, async = true } end
  t0 = core.monotime()
  local reports, errs = client:run_many(list, { timeout = 120 })
  print(("run_many: %d reports in %.2f s"):format(#ids, core.monotime() - t0))
  for i = 1, #ids do
    if reports[i] then
      print(("  %d. %s (%s), %d rows"):format(i, reports[i].name, reports[i].format, reports[i]:row_count()))
    else
      print(("  %d. failed: %s"):format(i, tostring(errs[i])))
    end
  end
end

local client, ids, org = require("example_org").connect("examples/async_blocking.lua", nil, ...)
local ok, err = pcall(main, client, ids)
client:close()
if org then org:stop() end
if not ok then error(err, 0) end
