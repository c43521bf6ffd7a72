-- spec/support/observe_scenario.lua: one scenario of client calls with an on_request
-- hook, run the same way by spec/observe_spec.lua on the libcurl engine and inside nginx
-- (spec/support/observe_probe.lua) on the cosocket engine: a sync run, an async run and
-- its wait, a run_many of one sync and one async report, a describe and client:limits().
-- Returns { infos = the hook's infos as plain data, usage = client:usage(), engine }.
local M = {}

-- An info as plain data (JSON-safe): the error as its fields, limits as used/max/raw.
function M.plain(info)
  local out = {}
  for k, v in pairs(info) do
    local t = type(v)
    if t == "string" or t == "number" or t == "boolean" then out[k] = v end
  end
  local err = info.error
  if type(err) == "table" then
    out.error = { kind = err.kind, status = err.status, message = err.message, code = err.code,
      text = tostring(err) }
  end
  local limits = info.limits
  if type(limits) == "table" then
    local api = limits["api-usage"]
    out.limits = { raw = limits.raw, used = api and api.used, max = api and api.max }
  end
  out.has_error_field = info.error ~= nil
  return out
end

-- opts: the client options (instance_url, access_token, ...); ids: { sync =, async = }.
function M.run(sfreports, opts, ids)
  local infos = {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.on_request = function(info) infos[#infos + 1] = M.plain(info) end
  local c = assert(sfreports.new(o))
  local out = { engine = c.engine, steps = {} }
  local function step(name, ok, err)
    out.steps[#out.steps + 1] = { name = name, ok = ok and true or false, err = err and tostring(err) or nil }
  end
  local r, err = c:run_sync(ids.sync)
  step("run_sync", r, err)
  local inst
  inst, err = c:run_async(ids.async)
  step("run_async", inst, err)
  if inst then
    r, err = c:wait(inst, { poll_interval = 0.05, poll_max = 0.05 })
    step("wait", r, err)
  end
  local reports, errs = c:run_many({ ids.sync, { id = ids.async, async = true } },
    { poll_interval = 0.05, poll_max = 0.05 })
  step("run_many", reports[1] and reports[2], errs[1] or errs[2])
  r, err = c:describe(ids.sync)
  step("describe", r, err)
  local limits
  limits, err = c:limits()
  step("limits", limits, err)
  out.limits = limits and { sync = limits.HourlySyncReportRuns, async = limits.HourlyAsyncReportRuns,
    daily = limits.DailyApiRequests }
  out.usage = c:usage()
  out.infos = infos
  c:close()
  return out
end

return M
