-- sfreports.async: asynchronous report instances, waiting for them, and running many
-- reports at once through the C core's non-blocking engine.
--
-- An instance polls its own results resource (not the instance list): when it reports
-- Success, that same response already holds the results, so no extra fetch is needed.
-- What the docs leave open is decided here: a results body without a factMap (New,
-- Running, or Success not yet carrying data) means "poll again"; status Error is an `api`
-- error (code INSTANCE_ERROR, not retryable); a 404 means the instance is gone (deleted,
-- or expired after 24 h: err.gone = true), and is not waited on. A deadline is a
-- `timeout` error that keeps instance_id and report_id. `delete` = "after" (after
-- Success or Error), "timeout", or true (both) removes the instance.
--
-- Polling schedule. The first poll comes `poll_interval` (0.25 s) after the instance was
-- created; afterwards each gap is GROWTH (20%) of the time the instance has been running,
-- at least `poll_interval` and at most `poll_max` (10 s). The gaps therefore grow
-- exponentially, and a report is seen finished at most ~30% (plus one round trip) after
-- it really finished. `wait` adds +-10% jitter so that independent waiters do not poll
-- in lockstep; `run_many` leaves it out on purpose, so that the polls of instances
-- created together go out together in the same engine turn.
--
-- Sleeping. Waiting never busy-waits; how it sleeps is sfreports.sleep's choice:
-- ngx.sleep inside OpenResty, a `sleep` function from the call or client options,
-- `yield = true` (the yield protocol below), else the C core's blocking sleep.
--
-- The yield protocol. With `yield = true` the waiting coroutine calls
--     coroutine.yield({ sfreports = "sleep", seconds = s })
-- and expects to be resumed, with no values, once about `s` seconds have passed (earlier
-- or later is harmless: the wait recomputes its schedule from the clock). Anything else
-- a coroutine yields is not ours; a resume loop should pass it on. Example:
--     local co = coroutine.create(function() return inst:wait({ yield = true }) end)
--     local ok, req = coroutine.resume(co)
--     while coroutine.status(co) ~= "dead" do
--       if type(req) == "table" and req.sfreports == "sleep" then my_sleep(req.seconds) end
--       ok, req = coroutine.resume(co)
--     end
-- See examples/async_yield.lua, async_sleep_hook.lua and async_blocking.lua.
--
-- run_many (many reports in flight at once) lives in sfreports.many.
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local options = require "sfreports.options"
local sleep_mod = require "sfreports.sleep"

local type, ipairs, tostring, error, setmetatable, getmetatable =
  type, ipairs, tostring, error, setmetatable, getmetatable
local format, random, min, max = string.format, math.random, math.min, math.max
local monotime = core.monotime

local M = {}

M.DEFAULT_TIMEOUT = 600        -- seconds a wait may take before a `timeout` error
M.DEFAULT_POLL_INTERVAL = 0.25 -- first poll, and the smallest gap: small reports finish fast
M.DEFAULT_FIRST_POLL = M.DEFAULT_POLL_INTERVAL
M.DEFAULT_POLL_MAX = 10        -- backoff cap
M.GROWTH = 0.2                 -- gap = GROWTH x time the instance has been running
M.JITTER = 0.1                 -- +-10% on each gap of a single wait

local MIN_SLEEP = sleep_mod.MIN_SLEEP
M.MIN_POLL_BUDGET = 0.25       -- seconds a poll at the very end of a wait may still take
M.DEADLINE_SLACK = 0.05        -- a poll timing out this close to the wait's end ends the wait

local Instance = {}
Instance.__index = Instance

local function attr(d, name)
  local a = type(d) == "table" and d.attributes
  if type(a) == "table" and a[name] ~= nil then return a[name] end
  return type(d) == "table" and d[name] or nil
end

-- lua-cjson's null is not nil; an instance's completionDate is null until it finishes.
local function value(v)
  if v == core.null then return nil end
  return v
end

local function unfinished(status)
  return status == "New" or status == "Running"
end

-- Wraps a decoded instance (POST response, list entry, or instance results body).
-- `started` is the local clock reading the polling schedule counts from.
function M.instance(client, report_id, decoded)
  return setmetatable({
    client = client,
    report_id = report_id,
    id = attr(decoded, "id"),
    status = attr(decoded, "status"),
    url = value(attr(decoded, "url")),
    owner_id = attr(decoded, "ownerId"),
    request_date = attr(decoded, "requestDate"),
    completion_date = value(attr(decoded, "completionDate")),
    has_detail_rows = attr(decoded, "hasDetailRows"),
    raw = decoded,
    polls = 0,
    started = monotime(),
  }, Instance)
end

function Instance:__tostring()
  return format("sfreports.instance(%s, %s)", tostring(self.id), tostring(self.status))
end

local function check_instance(inst, where)
  if getmetatable(inst) ~= Instance then
    error(format("sfreports: %s expects an instance (from client:run_async or client:instances), got %s",
      where, type(inst)), 4)
  end
end

---------------------------------------------------------------------------
-- one poll

-- Adds instance context to a failed poll. A 404 means the instance is gone: instances
-- expire after 24 hours, or someone deleted it.
function M.poll_failed(inst, err)
  err.instance_id, err.report_id = inst.id, err.report_id or inst.report_id
  if err.status == 404 then
    err.code = err.code or "NOT_FOUND"
    err.gone = true
    err.retryable = false
    err.message = format("report instance %s no longer exists (deleted, or expired after 24 hours): %s",
      tostring(inst.id), tostring(err.message))
  end
  return nil, err
end

-- Folds one instance results body into the instance. Returns inst, report when the
-- results are there; inst alone while the run is unfinished; nil, err on Error.
-- Success without a factMap is treated as not there yet (the docs do not say what the
-- results resource returns around completion), so the next poll fetches them.
local function absorb(inst, decoded)
  inst.polls = inst.polls + 1
  if type(decoded) ~= "table" then
    return nil, errors.new("decode", format("report instance %s: the results resource returned no JSON object",
      tostring(inst.id)), { instance_id = inst.id, report_id = inst.report_id })
  end
  local status = attr(decoded, "status")
  inst.status = status or inst.status
  inst.completion_date = value(attr(decoded, "completionDate")) or inst.completion_date
  if status == "Error" then
    return nil, errors.new("api", format("report instance %s of report %s ended in status Error",
      tostring(inst.id), tostring(inst.report_id)),
      { code = "INSTANCE_ERROR", instance_id = inst.id, report_id = inst.report_id,
        instance_status = "Error", retryable = false })
  end
  if decoded.factMap ~= nil and not unfinished(status) then
    local report, rerr = require("sfreports.report").new(decoded)
    if not report then
      rerr.instance_id = rerr.instance_id or inst.id
      rerr.report_id = rerr.report_id or inst.report_id
      return nil, rerr
    end
    return inst, report
  end
  return inst
end
M.absorb = absorb

-- One status check; never waits. Returns the instance (status updated) and, once the
-- status is Success, the report; or nil, err. timeout: the budget of this check.
function M.poll(client, inst, timeout)
  check_instance(inst, "poll")
  -- ids go into the URL path: one changed by hand is refused before any request
  for _, which in ipairs({ { inst.report_id, "report id" }, { inst.id, "instance id" } }) do
    local ok, why = ids.check(which[1], which[2])
    if not ok then return nil, errors.invalid(why, { instance_id = inst.id, report_id = inst.report_id }) end
  end
  local decoded, err = client:fetch_instance_raw(inst.report_id, inst.id, timeout)
  if decoded == nil then return M.poll_failed(inst, err) end
  return absorb(inst, decoded)
end

---------------------------------------------------------------------------
-- sleeping

-- How a wait of this client sleeps with call options opts (see sfreports.sleep): returns
-- sleep(seconds), and true when that sleep blocks the whole thread.
function M.sleeper(client, opts)
  return sleep_mod.choose(opts, client and client.settings and client.settings.sleep)
end

---------------------------------------------------------------------------
-- the schedule

-- Gap before the next poll of an instance that has been running for `elapsed` seconds.
function M.poll_gap(elapsed, opts)
  local first = opts.poll_interval or M.DEFAULT_POLL_INTERVAL
  local cap = opts.poll_max or M.DEFAULT_POLL_MAX
  local gap = elapsed * M.GROWTH
  if gap < first then gap = first end
  if gap > cap then gap = cap end
  return gap
end

local function jitter(gap)
  return gap * (1 - M.JITTER + 2 * M.JITTER * random())
end
M.jitter = jitter -- +-JITTER on a gap (sfreports.dashboards.refresh waits on the same schedule)

-- When the first poll of an instance is due: soon after creation for a run that is
-- still going, at once for one that says it finished (or whose status is unknown).
function M.first_due(inst, opts, now, jittered)
  if not unfinished(inst.status) then return now end
  local gap = M.poll_gap(0, opts)
  return (inst.started or now) + (jittered and jitter(gap) or gap)
end

---------------------------------------------------------------------------
-- waiting for one instance

-- Run options are accepted (and ignored) so that a caller may hand its run options on.
local function check_wait_options(opts, where)
  return options.check(opts, options.WAIT, where, 3, options.RUN)
end
M.WAIT_OPTIONS = options.WAIT

-- delete = true deletes both after reading (Success or Error) and on a timeout.
function M.wants_delete(opts, when)
  return opts.delete == true or opts.delete == when
end

function M.timeout_error(inst, timeout, deleted, derr)
  local msg
  if deleted then
    msg = format("report instance %s of report %s still %s after %gs; it was deleted (delete option)",
      tostring(inst.id), tostring(inst.report_id), tostring(inst.status), timeout)
  else
    msg = format("report instance %s of report %s still %s after %gs; wait for it again or fetch it later "
      .. "with client:fetch_instance(report_id, instance_id)",
      tostring(inst.id), tostring(inst.report_id), tostring(inst.status), timeout)
  end
  return errors.new("timeout", msg, { instance_id = inst.id, report_id = inst.report_id,
    instance_status = inst.status, retryable = not deleted, deleted = deleted or nil,
    delete_error = derr })
end

-- Deletes the instance, remembering a failure on it rather than failing the wait: the
-- report was read, and an instance left behind expires on its own after 24 hours.
local function delete_now(client, inst)
  local ok, err = client:delete_instance(inst.report_id, inst.id)
  inst.deleted = ok == true
  inst.delete_error = err
  return ok, err
end

-- Waits until the instance finishes. Returns the report, or nil, err. A deadline gives a
-- `timeout` error that keeps instance_id so the caller can come back later.
-- opts: timeout, poll_interval, poll_max, sleep, yield, delete (true | "timeout" | "after").
-- The end of a wait whose time is up: the timeout error, after deleting the instance
-- when opts.delete says "timeout".
local function timed_out(client, inst, opts, timeout)
  local deleted, derr
  if M.wants_delete(opts, "timeout") then deleted, derr = delete_now(client, inst) end
  return nil, M.timeout_error(inst, timeout, deleted, derr)
end

function M.wait(client, inst, opts)
  check_instance(inst, "wait")
  opts = check_wait_options(opts, "wait")
  if inst.result ~= nil then -- a reused instance (sfreports.reuse): its report was read already
    local report = inst.result
    inst.result = nil
    return report
  end
  local sleep = M.sleeper(client, opts)
  local timeout = opts.timeout or M.DEFAULT_TIMEOUT
  local now = monotime()
  local deadline = now + timeout
  local started = inst.started or now
  local due = M.first_due(inst, opts, now, true)
  while true do
    if due > now then
      sleep(max(min(due, deadline) - now, MIN_SLEEP))
    end
    -- each poll is bounded by what is left of the wait (at least a round trip's worth)
    local ok, report = M.poll(client, inst, max(deadline - monotime(), M.MIN_POLL_BUDGET))
    if not ok then
      -- a poll cut short because the wait's time (or the client's budget, which ends
      -- with it or before) ran out mid-request: the wait timed out, whatever the
      -- transport's words for it were
      -- (engines count in milliseconds: a poll given all that was left may end a hair early)
      if type(report) == "table" and report.kind == "timeout" and monotime() >= deadline - M.DEADLINE_SLACK then
        return timed_out(client, inst, opts, timeout)
      end
      if report.code == "INSTANCE_ERROR" and M.wants_delete(opts, "after") then delete_now(client, inst) end
      return nil, report
    end
    if report then
      if M.wants_delete(opts, "after") then delete_now(client, inst) end
      return report
    end
    now = monotime()
    if now >= deadline then return timed_out(client, inst, opts, timeout) end
    due = now + jitter(M.poll_gap(now - started, opts))
  end
end

function Instance:poll()
  return M.poll(self.client, self)
end

function Instance:wait(opts)
  return M.wait(self.client, self, opts)
end

function Instance:delete()
  return self.client:delete_instance(self.report_id, self.id)
end

M.Instance = Instance

return M
