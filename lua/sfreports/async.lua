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
-- Sleeping. Waiting never busy-waits. How it sleeps is chosen in this order:
--   1. inside OpenResty, in a phase that may yield (content, access, timer...): ngx.sleep;
--   2. a `sleep` function from the call options, else from the client options
--      (e.g. copas.sleep, cqueues.sleep, or your own scheduler's);
--   3. `yield = true` (call option) inside a coroutine: the yield protocol below;
--   4. otherwise a blocking sleep from the C core (core.sleep).
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
-- run_many keeps every request of a batch in flight together from one Lua thread: it
-- starts requests with transport:start, drives them with transport:perform(wait), and
-- while instances are not due for a poll it lets the engine wait for network activity
-- (blocking default, and ngx.sleep with the cosocket transport) or alternates perform(0)
-- with short sleeps of the chosen sleeper (user hooks, yield), so sync runs in flight
-- keep progressing.
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"

local type, pairs, ipairs, tostring, error, setmetatable, getmetatable, rawget =
  type, pairs, ipairs, tostring, error, setmetatable, getmetatable, rawget
local format, random, min, max, huge, ceil = string.format, math.random, math.min, math.max, math.huge,
  math.ceil
local monotime = core.monotime

local M = {}

M.DEFAULT_TIMEOUT = 600        -- seconds a wait may take before a `timeout` error
M.DEFAULT_POLL_INTERVAL = 0.25 -- first poll, and the smallest gap: small reports finish fast
M.DEFAULT_FIRST_POLL = M.DEFAULT_POLL_INTERVAL
M.DEFAULT_POLL_MAX = 10        -- backoff cap
M.GROWTH = 0.2                 -- gap = GROWTH x time the instance has been running
M.JITTER = 0.1                 -- +-10% on each gap of a single wait
M.DEFAULT_MAX_SYNC = 20        -- Salesforce: 20 concurrent synchronous runs
M.DEFAULT_MAX_FETCH = 200      -- Salesforce: 200 concurrent requests for async results
M.SLICE = 0.02                 -- cooperative sleeps while requests are in flight
M.BATCH = 0.05                 -- run_many: poll times are rounded up to this grid (batching)

-- Timers have millisecond resolution (nginx warns about ngx.sleep(0)): never ask for less.
local MIN_SLEEP = 0.001

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
local function poll_failed(inst, err)
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
    return inst, require("sfreports.report").new(decoded)
  end
  return inst
end
M.absorb = absorb

local function results_path(client, inst)
  return client:path("reports/%s/instances/%s", inst.report_id, inst.id)
end

-- One status check; never waits. Returns the instance (status updated) and, once the
-- status is Success, the report; or nil, err.
function M.poll(client, inst)
  check_instance(inst, "poll")
  -- ids go into the URL path: one changed by hand is refused before any request
  for _, which in ipairs({ { inst.report_id, "report id" }, { inst.id, "instance id" } }) do
    local ok, why = ids.check(which[1], which[2])
    if not ok then return nil, errors.invalid(why, { instance_id = inst.id, report_id = inst.report_id }) end
  end
  local decoded, err = client:request("GET", results_path(client, inst))
  if decoded == nil then return poll_failed(inst, err) end
  return absorb(inst, decoded)
end

---------------------------------------------------------------------------
-- sleeping

-- Phases in which ngx.sleep may yield.
local NGX_SLEEP_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

local function yield_sleep(s)
  coroutine.yield({ sfreports = "sleep", seconds = s })
end

local function in_coroutine()
  local co, is_main = coroutine.running()
  return co ~= nil and not is_main
end

-- Chooses how to sleep (see the header): returns sleep(seconds), and true when that
-- sleep blocks the whole thread (then run_many lets the engine do the waiting instead).
function M.sleeper(client, opts)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.sleep) == "function" and type(ngx.get_phase) == "function"
    and NGX_SLEEP_PHASES[ngx.get_phase()] then
    return ngx.sleep, false
  end
  local user = opts.sleep or (client and client._opts and client._opts.sleep)
  if user ~= nil then
    if type(user) ~= "function" then
      error("sfreports: option 'sleep' must be a function(seconds), got " .. type(user), 3)
    end
    return user, false
  end
  if opts.yield then
    if not in_coroutine() then
      error("sfreports: yield = true needs to run inside a coroutine (see the yield protocol in sfreports.async)", 3)
    end
    return yield_sleep, false
  end
  return core.sleep, true
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

-- When the first poll of an instance is due: soon after creation for a run that is
-- still going, at once for one that says it finished (or whose status is unknown).
local function first_due(inst, opts, now, jittered)
  if not unfinished(inst.status) then return now end
  local gap = M.poll_gap(0, opts)
  return (inst.started or now) + (jittered and jitter(gap) or gap)
end

---------------------------------------------------------------------------
-- waiting for one instance

local WAIT_OPTIONS = {
  timeout = "number", poll_interval = "number", poll_max = "number",
  sleep = "function", yield = "boolean", delete = "boolean|string",
}

local function check_wait_options(opts, where)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("sfreports: %s expects an options table, got %s", where, type(opts)), 4)
  end
  -- Run options are accepted (and ignored) so that a caller may hand its run options on.
  local run_options = require("sfreports.client").RUN_OPTIONS
  for k, v in pairs(opts) do
    local want = WAIT_OPTIONS[k] or run_options[k]
    if not want then error(format("sfreports: unknown option '%s' for %s", tostring(k), where), 4) end
    if not want:match(type(v)) then
      error(format("sfreports: option '%s' for %s must be a %s, got %s", k, where, want, type(v)), 4)
    end
  end
  local d = opts.delete
  if d ~= nil and d ~= true and d ~= false and d ~= "after" and d ~= "timeout" then
    error(format("sfreports: option 'delete' for %s must be true, false, \"after\" or \"timeout\", got %q",
      where, tostring(d)), 4)
  end
  if opts.timeout and opts.timeout < 0 then
    error(format("sfreports: option 'timeout' for %s must not be negative", where), 4)
  end
  return opts
end
M.WAIT_OPTIONS = WAIT_OPTIONS

-- delete = true deletes both after reading (Success or Error) and on a timeout.
local function wants_delete(opts, when)
  return opts.delete == true or opts.delete == when
end

local function timeout_error(inst, timeout, deleted, derr)
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
function M.wait(client, inst, opts)
  check_instance(inst, "wait")
  opts = check_wait_options(opts, "wait")
  local sleep = M.sleeper(client, opts)
  local timeout = opts.timeout or M.DEFAULT_TIMEOUT
  local now = monotime()
  local deadline = now + timeout
  local started = inst.started or now
  local due = first_due(inst, opts, now, true)
  while true do
    if due > now then
      sleep(max(min(due, deadline) - now, MIN_SLEEP))
    end
    local ok, report = M.poll(client, inst)
    if not ok then
      if report.code == "INSTANCE_ERROR" and wants_delete(opts, "after") then delete_now(client, inst) end
      return nil, report
    end
    if report then
      if wants_delete(opts, "after") then delete_now(client, inst) end
      return report
    end
    now = monotime()
    if now >= deadline then
      local deleted, derr
      if wants_delete(opts, "timeout") then deleted, derr = delete_now(client, inst) end
      return nil, timeout_error(inst, timeout, deleted, derr)
    end
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

---------------------------------------------------------------------------
-- many reports at once

-- Options of run_many itself (the rest are run options, defaults for every item).
local MANY_OPTIONS = {
  max_concurrent_sync = "number", max_concurrent_fetch = "number",
  sleep = "function", yield = "boolean",
}

-- Handles finished by any perform() of a transport, whoever called it: several
-- run_many calls may share one client (e.g. in coroutines), and each must find its own.
local finished_handles = setmetatable({}, { __mode = "k" })

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- Turns list entries into items: { index, id, async, opts } (opts = the call's run
-- options overlaid with the entry's own). Bad ids become errors in place; bad option
-- names or types raise, as for a single run.
local function make_items(list, run_defaults, errs)
  local check = require("sfreports.client").check_options
  local RUN_OPTIONS = require("sfreports.client").RUN_OPTIONS
  local items = {}
  for i = 1, #list do
    local entry = list[i]
    local id, o
    if type(entry) == "string" then
      id, o = entry, copy(run_defaults)
    elseif type(entry) == "table" then
      check(entry, RUN_OPTIONS, "run_many entry " .. i)
      o = copy(run_defaults)
      for k, v in pairs(entry) do o[k] = v end
      id = entry.id
    else
      error(format("sfreports: run_many entry %d must be a report id or a table with id, got %s",
        i, type(entry)), 3)
    end
    local ok, why = ids.check(id, "report id")
    if not ok then
      errs[i] = errors.invalid(format("run_many entry %d: %s", i, why), { report_id = id })
    else
      if o.delete ~= nil and o.delete ~= true and o.delete ~= false and o.delete ~= "after"
        and o.delete ~= "timeout" then
        error(format("sfreports: option 'delete' of run_many entry %d must be true, false, \"after\" or "
          .. "\"timeout\"", i), 3)
      end
      items[#items + 1] = { index = i, id = id, async = o.async == true, opts = o }
    end
  end
  return items
end

-- The run state: queues, requests in flight, instances waiting for a poll, results.
local Run = {}
Run.__index = Run

-- Whether transport:perform(wait) may do the waiting between polls: when sleeping would
-- block the thread anyway (the engine then also wakes up for network activity), or with
-- ngx.sleep on the cosocket transport, whose perform waits without blocking the worker.
local function engine_waits(client, sleep, blocking)
  if blocking then return true end
  local ngx = rawget(_G, "ngx")
  local tngx = package.loaded["sfreports.transport_ngx"]
  return type(ngx) == "table" and sleep == ngx.sleep and type(tngx) == "table"
    and getmetatable(client.transport) == tngx.Transport
end

local function new_run(client, items, opts, reports, errs)
  local sleep, blocking = M.sleeper(client, opts)
  blocking = engine_waits(client, sleep, blocking)
  local copts = client._opts or {}
  return setmetatable({
    client = client, transport = client.transport,
    reports = reports, errs = errs,
    sync_queue = {}, async_queue = {}, sq = 1, aq = 1,
    inflight = {},          -- items with a request in flight
    waiting = {},           -- async items between polls
    n_sync = 0, n_async = 0, open = #items,
    max_sync = opts.max_concurrent_sync or copts.max_concurrent_sync or M.DEFAULT_MAX_SYNC,
    max_fetch = opts.max_concurrent_fetch or copts.max_concurrent_fetch or M.DEFAULT_MAX_FETCH,
    sleep = sleep, blocking = blocking,
    stats = { requests = 0, polls = 0, instances = 0, turns = 0, poll_turns = 0,
      max_inflight = 0, max_sync = 0, max_async = 0, deletes = 0, resent = 0 },
  }, Run)
end

function Run:finish(item, report, err)
  if report then self.reports[item.index] = report else self.errs[item.index] = err end
  item.state = "done"
  self.open = self.open - 1
end

-- Starts one request for an item; `kind` is "sync" or "async" (which limit it counts against).
function Run:start(item, kind, method, path, body)
  item.method, item.path, item.body, item.kind = method, path, body, kind
  item.generation = self.client._token_generation -- which token this request carries
  item.handle = self.transport:start(method, path, body)
  local inflight = self.inflight
  inflight[#inflight + 1] = item
  if kind == "sync" then self.n_sync = self.n_sync + 1 else self.n_async = self.n_async + 1 end
  local stats = self.stats
  stats.requests = stats.requests + 1
  if #inflight > stats.max_inflight then stats.max_inflight = #inflight end
  if self.n_sync > stats.max_sync then stats.max_sync = self.n_sync end
  if self.n_async > stats.max_async then stats.max_async = self.n_async end
end

function Run:launch_sync(item)
  local req, merr = self.client:_run_request(item.id, item.opts, false)
  if not req then return self:finish(item, nil, merr) end
  item.state = "sync"
  self:start(item, "sync", req.method, req.path, req.body)
end

function Run:launch_async(item)
  local req, merr = self.client:_run_request(item.id, item.opts, true)
  if not req then return self:finish(item, nil, merr) end
  item.state = "post"
  self:start(item, "async", req.method, req.path, req.body)
end

function Run:start_poll(item)
  item.state = "poll"
  self.stats.polls = self.stats.polls + 1
  self:start(item, "async", "GET", results_path(self.client, item.inst))
end

function Run:start_delete(item, report, err)
  item.state = "delete"
  item.result_report, item.result_err = report, err
  self.stats.deletes = self.stats.deletes + 1
  local inst = item.inst
  self:start(item, "async", "DELETE", self.client:path("reports/%s/instances/%s", inst.report_id, inst.id))
end

-- When a poll planned for `t` goes out: t rounded up to the next multiple of M.BATCH,
-- so that instances created at about the same time are polled in the same engine turn
-- (one turn per batch, not one per instance). Rounding up, never down: a poll sent
-- before its time would find the run unfinished and cost one more poll.
local function batched(t)
  local b = M.BATCH
  return ceil(t / b) * b
end

-- Starts whatever may start now: due polls first (finishing runs frees the org), then
-- new instances, then sync runs, each within its limit.
function Run:launch(now)
  local waiting, kept, polled = self.waiting, {}, false
  for _, item in ipairs(waiting) do
    if item.due <= now and self.n_async < self.max_fetch then
      self:start_poll(item)
      polled = true
    else
      kept[#kept + 1] = item
    end
  end
  self.waiting = kept
  if polled then self.stats.poll_turns = self.stats.poll_turns + 1 end
  local aq, sq = self.async_queue, self.sync_queue
  while self.aq <= #aq and self.n_async < self.max_fetch do
    self.aq = self.aq + 1
    self:launch_async(aq[self.aq - 1])
  end
  while self.sq <= #sq and self.n_sync < self.max_sync do
    self.sq = self.sq + 1
    self:launch_sync(sq[self.sq - 1])
  end
end

-- Whether a failed request goes on to the client's own policy: an expired token (the
-- client renews it once, however many requests failed with it), or a failure the retry
-- policy would try again (sfreports.retry: idempotent methods, unsent POSTs, 502-504).
local function resend(method, err)
  if err.kind == "auth" then return true end
  local ok, retry = pcall(require, "sfreports.retry")
  return ok and type(retry) == "table" and retry.retryable(method, err) == true
end

-- The result of a finished request. A failure the client's policy may cure is handed
-- once to client:request (a blocking call that still drives the other transfers), so a
-- request in run_many fails only where the same request made alone would fail.
function Run:result(item)
  local v, meta = item.handle:result()
  item.handle = nil
  if v == nil and not item.resent and resend(item.method, meta) then
    item.resent = true
    self.stats.resent = self.stats.resent + 1
    if meta.kind == "auth" and self.client._auth then
      -- renew for the token this request carried (a no-op when another request already
      -- did), so the re-send goes out with the new token, not the expired one
      local ok, rerr = self.client:_renew_token(item.generation)
      if not ok then return nil, rerr end
    end
    return self.client:request(item.method, item.path, item.body)
  end
  if v == nil then return nil, meta end
  self.client:_note_meta(meta)
  return v
end

-- An instance exists: schedule its first poll.
function Run:created(item, decoded, now)
  local inst = M.instance(self.client, item.id, decoded)
  if type(inst.id) ~= "string" or not ids.check(inst.id) then
    return self:finish(item, nil, errors.new("decode",
      "the instance response of report " .. item.id .. " has no instance id", { report_id = item.id }))
  end
  self.stats.instances = self.stats.instances + 1
  item.inst = inst
  item.deadline = now + (item.opts.timeout or M.DEFAULT_TIMEOUT)
  item.planned = batched(first_due(inst, item.opts, now, false))
  item.due = min(item.planned, item.deadline)
  item.state = "wait"
  self.waiting[#self.waiting + 1] = item
end

function Run:polled(item, decoded, now)
  local inst, o = item.inst, item.opts
  local ok, report = absorb(inst, decoded)
  if not ok then
    if wants_delete(o, "after") then return self:start_delete(item, nil, report) end
    return self:finish(item, nil, report)
  end
  if report then
    if wants_delete(o, "after") then return self:start_delete(item, report) end
    return self:finish(item, report)
  end
  if now >= item.deadline then
    local timeout = o.timeout or M.DEFAULT_TIMEOUT
    if wants_delete(o, "timeout") then
      item.timeout = timeout
      return self:start_delete(item)
    end
    return self:finish(item, nil, timeout_error(inst, timeout))
  end
  -- The schedule runs on planned times, not on when answers came back: otherwise every
  -- poll would drift by the time a batch of answers takes. A late answer still leaves
  -- half a poll_interval before the next poll, so a slow server is not polled back to back.
  local planned = item.planned
  planned = batched(planned + M.poll_gap(planned - inst.started, o))
  item.planned = planned
  local floor = now + (o.poll_interval or M.DEFAULT_POLL_INTERVAL) / 2
  item.due = min(planned > floor and planned or batched(floor), item.deadline)
  item.state = "wait"
  self.waiting[#self.waiting + 1] = item
end

function Run:deleted(item, ok, derr)
  local inst = item.inst
  inst.deleted, inst.delete_error = ok, derr
  if item.timeout then
    return self:finish(item, nil, timeout_error(inst, item.timeout, ok, derr))
  end
  return self:finish(item, item.result_report, item.result_err)
end

-- Handles one finished request of an item.
function Run:settle(item, now)
  if item.kind == "sync" then self.n_sync = self.n_sync - 1 else self.n_async = self.n_async - 1 end
  local state = item.state
  local v, err = self:result(item)
  if state == "delete" then return self:deleted(item, v ~= nil, err) end
  if v == nil then
    err.report_id = err.report_id or item.id
    if state == "poll" then
      local _, perr = poll_failed(item.inst, err)
      return self:finish(item, nil, perr)
    end
    return self:finish(item, nil, err)
  end
  if state == "sync" then
    if type(v) ~= "table" then
      return self:finish(item, nil, errors.new("decode", "report " .. item.id .. " returned no report result",
        { report_id = item.id }))
    end
    return self:finish(item, require("sfreports.report").new(v))
  elseif state == "post" then
    return self:created(item, v, now)
  end
  return self:polled(item, v, now)
end

-- Whether a request has finished: seen in some perform() result, or (when the handle can
-- tell) finished while another loop drove the engine and took the perform() result.
local function finished(h)
  if finished_handles[h] then return true end
  local done = h.done
  return done ~= nil and done(h) == true
end

-- Collects the finished requests of this run.
function Run:reap()
  local inflight, kept, done = self.inflight, {}, {}
  for _, item in ipairs(inflight) do
    if finished(item.handle) then
      finished_handles[item.handle] = nil
      done[#done + 1] = item
    else
      kept[#kept + 1] = item
    end
  end
  self.inflight = kept
  if #done > 0 then
    local now = monotime()
    for _, item in ipairs(done) do self:settle(item, now) end
  end
  return #done
end

-- One engine turn: runs transfers, waiting up to `wait` seconds for activity.
function Run:drive(wait)
  self.stats.turns = self.stats.turns + 1
  local list = self.transport:perform(wait)
  for i = 1, #list do finished_handles[list[i]] = true end
  return self:reap()
end

-- The next moment something is due without network activity: a poll that may start.
function Run:next_due()
  if self.n_async >= self.max_fetch then return huge end
  local t = huge
  for _, item in ipairs(self.waiting) do
    if item.due < t then t = item.due end
  end
  return t
end

function Run:loop()
  while self.open > 0 do
    local now = monotime()
    self:launch(now)
    if self.open == 0 then break end
    local wake = self:next_due()
    local wait = max(MIN_SLEEP, wake - now)
    if #self.inflight > 0 then
      if self.blocking then
        -- The engine is the sleeper: it returns as soon as a transfer moves.
        self:drive(min(wait, 1))
      elseif self:drive(0) == 0 then
        self.sleep(min(wait, M.SLICE))
      end
    elseif wake < huge then
      self.sleep(wait)
    else
      error("sfreports: run_many has nothing in flight and nothing due (a bug)")
    end
  end
end

-- Runs many reports with their requests in flight together. list: report ids or tables
-- { id = ..., async = true|false, <run options> } (async defaults to false: a sync run).
-- opts: run options that apply to every entry (an entry's own win), plus
--   max_concurrent_sync  (default: client option, else 20) sync runs in flight at once
--   max_concurrent_fetch (default: client option, else 200) async requests in flight at once
--                        (instance POSTs, polls, results, DELETEs)
--   timeout, poll_interval, poll_max, delete: as for wait, per async entry (timeout counts
--                        from the creation of the entry's instance)
--   sleep, yield:        how to sleep between polls (see the header)
-- Returns reports, errs: arrays in input order (reports[i] or errs[i] is set for every i;
-- both carry n = #list, since holes make # unreliable), and stats: { requests, instances,
-- polls, poll_turns (engine turns in which polls went out), turns, max_inflight,
-- max_sync, max_async, deletes, resent }. A failure the client's policy may cure (an
-- `auth` error: token renewal; a retryable one: sfreports.retry) is handed to
-- client:request once; other failures are reported in place.
function M.run_many(client, list, opts)
  if type(list) ~= "table" then
    error("sfreports: run_many expects a list of report ids or run tables, got " .. type(list), 2)
  end
  local check = require("sfreports.client").check_options
  local allowed = copy(require("sfreports.client").RUN_OPTIONS)
  for k, v in pairs(MANY_OPTIONS) do allowed[k] = v end
  opts = check(opts, allowed, "run_many")
  for _, k in ipairs({ "max_concurrent_sync", "max_concurrent_fetch" }) do
    if opts[k] ~= nil and opts[k] < 1 then
      error(format("sfreports: option '%s' for run_many must be at least 1", k), 2)
    end
  end
  local run_defaults = {}
  for k, v in pairs(opts) do
    if not MANY_OPTIONS[k] then run_defaults[k] = v end
  end
  local reports, errs = { n = #list }, { n = #list }
  local items = make_items(list, run_defaults, errs)
  local run = new_run(client, items, opts, reports, errs)
  for _, item in ipairs(items) do
    local q = item.async and run.async_queue or run.sync_queue
    q[#q + 1] = item
  end
  run:loop()
  return reports, errs, run.stats
end

return M
