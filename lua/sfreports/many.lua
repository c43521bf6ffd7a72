-- sfreports.many: many reports at once (client:run_many), with every request of a batch
-- in flight together from one Lua thread.
--
-- run_many keeps every request of a batch in flight together from one Lua thread: it
-- starts requests with transport:start, drives them with transport:perform(wait), and
-- while instances are not due for a poll it lets the engine wait for network activity
-- (blocking default, and ngx.sleep with the cosocket transport) or alternates perform(0)
-- with short sleeps of the chosen sleeper (user hooks, yield), so sync runs in flight
-- keep progressing. A failed request is decided on by the client's Sender (retry,
-- token renewal, deadline) like any call, and a retry goes back into the engine with the
-- others after its backoff, never one at a time after the batch.
local core = require "sfreports.core"
local async = require "sfreports.async"
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local options = require "sfreports.options"
local sleep_mod = require "sfreports.sleep"

local type, pairs, ipairs, error, setmetatable = type, pairs, ipairs, error, setmetatable
local format, min, max, huge, ceil = string.format, math.min, math.max, math.huge, math.ceil
local monotime = core.monotime
local absorb, first_due, poll_gap, poll_failed = async.absorb, async.first_due, async.poll_gap, async.poll_failed
local wants_delete, timeout_error = async.wants_delete, async.timeout_error

local M = {}

M.SLICE = 0.02                 -- cooperative sleeps while requests are in flight
M.BATCH = 0.05                 -- poll times are rounded up to this grid (batching)
M.DEFAULT_TIMEOUT = async.DEFAULT_TIMEOUT
M.DEFAULT_POLL_INTERVAL = async.DEFAULT_POLL_INTERVAL
local MIN_SLEEP = sleep_mod.MIN_SLEEP


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
  local items = {}
  for i = 1, #list do
    local entry = list[i]
    local id, o
    if type(entry) == "string" then
      id, o = entry, copy(run_defaults)
    elseif type(entry) == "table" then
      options.check(entry, options.RUN, "run_many entry " .. i, 3)
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
      items[#items + 1] = { index = i, id = id, async = o.async == true, opts = o }
    end
  end
  return items
end

-- What Run:result returns for a request that goes again (any JSON value may be a result).
local AGAIN = {}

-- The run state: queues, requests in flight, instances waiting for a poll, requests
-- waiting for a retry, results.
local Run = {}
Run.__index = Run

-- Whether transport:perform(wait) may do the waiting between polls: when sleeping would
-- block the thread anyway (the engine then also wakes up for network activity), or with
-- ngx.sleep on the cosocket engine, whose perform waits without blocking the worker.
local function engine_waits(client, blocking)
  return blocking or client.engine == "ngx"
end

local function new_run(client, items, opts, reports, errs)
  local sleep, blocking = async.sleeper(client, opts)
  local settings = client.settings
  return setmetatable({
    client = client, transport = client.transport, sender = client.sender,
    reports = reports, errs = errs,
    sync_queue = {}, async_queue = {}, sq = 1, aq = 1,
    inflight = {},          -- items with a request in flight
    waiting = {},           -- async items between polls
    retrying = {},          -- items whose failed request goes again at item.retry_at
    n_sync = 0, n_async = 0, open = #items,
    max_sync = opts.max_concurrent_sync or settings.max_concurrent_sync,
    max_fetch = opts.max_concurrent_fetch or settings.max_concurrent_fetch,
    sleep = sleep, blocking = engine_waits(client, blocking),
    stats = { requests = 0, polls = 0, instances = 0, turns = 0, poll_turns = 0,
      max_inflight = 0, max_sync = 0, max_async = 0, deletes = 0, resent = 0 },
  }, Run)
end

function Run:finish(item, report, err)
  if report then self.reports[item.index] = report else self.errs[item.index] = err end
  item.state = "done"
  self.open = self.open - 1
end

-- Puts the item's current request (item.starter) on the engine.
function Run:send(item)
  local left = item.call_deadline - monotime()
  item.generation = self.sender.generation -- which token this request carries
  item.tries, item.sent_at = (item.tries or 0) + 1, monotime()
  item.handle = item.starter(self.transport, { start = true, timeout = left > 0 and left or MIN_SLEEP })
  local inflight = self.inflight
  inflight[#inflight + 1] = item
  if item.kind == "sync" then self.n_sync = self.n_sync + 1 else self.n_async = self.n_async + 1 end
  local stats = self.stats
  stats.requests = stats.requests + 1
  if #inflight > stats.max_inflight then stats.max_inflight = #inflight end
  if self.n_sync > stats.max_sync then stats.max_sync = self.n_sync end
  if self.n_async > stats.max_async then stats.max_async = self.n_async end
end

-- Starts a new request for an item: `kind` is "sync" or "async" (which limit it counts
-- against), method its HTTP method (for the retry policy), starter(transport, ropts) puts
-- it on the engine and returns its handle. The request's deadline (retries included) is
-- the client's timeout from now.
function Run:start(item, kind, method, starter)
  item.kind, item.method, item.starter = kind, method, starter
  item.attempt, item.renewed, item.tries = 0, false, 0
  item.call_deadline = self.sender:deadline()
  self:send(item)
end

function Run:launch_run(item, kind)
  local plan, perr = self.client:run_plan(item.id, item.opts, kind)
  if not plan then return self:finish(item, nil, perr) end
  item.state = kind == "sync" and "sync" or "post"
  local fn = kind == "sync" and "run_sync" or "run_async"
  self:start(item, kind, plan.method, function(t, ropts)
    return t[fn](t, plan.id, plan.metadata, plan.details, ropts)
  end)
end

function Run:start_poll(item)
  item.state = "poll"
  self.stats.polls = self.stats.polls + 1
  local inst = item.inst
  self:start(item, "async", "GET", function(t, ropts)
    return t:fetch_instance(inst.report_id, inst.id, ropts)
  end)
end

function Run:start_delete(item, report, err)
  item.state = "delete"
  item.result_report, item.result_err = report, err
  self.stats.deletes = self.stats.deletes + 1
  local inst = item.inst
  local path = self.client:path("reports/%s/instances/%s", inst.report_id, inst.id)
  self:start(item, "async", "DELETE", function(t, ropts)
    return t:start("DELETE", path, nil, nil, ropts)
  end)
end

-- When a poll planned for `t` goes out: t rounded up to the next multiple of M.BATCH,
-- so that instances created at about the same time are polled in the same engine turn
-- (one turn per batch, not one per instance). Rounding up, never down: a poll sent
-- before its time would find the run unfinished and cost one more poll.
local function batched(t)
  local b = M.BATCH
  return ceil(t / b) * b
end

local function has_room(self, kind)
  if kind == "sync" then return self.n_sync < self.max_sync end
  return self.n_async < self.max_fetch
end

-- Starts whatever may start now: due retries and polls first (finishing runs frees the
-- org), then new instances, then sync runs, each within its limit.
function Run:launch(now)
  local retrying, later = self.retrying, {}
  for _, item in ipairs(retrying) do
    if item.retry_at <= now and has_room(self, item.kind) then self:send(item) else later[#later + 1] = item end
  end
  self.retrying = later
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
    self:launch_run(aq[self.aq - 1], "async")
  end
  while self.sq <= #sq and self.n_sync < self.max_sync do
    self.sq = self.sq + 1
    self:launch_run(sq[self.sq - 1], "sync")
  end
end

-- The result of a finished request, as the client's Sender would have it for a single
-- call: an `auth` failure renews the token (once per token generation, however many
-- requests failed with it) and the request goes again at once; a failure the retry
-- policy may cure goes back into the engine after its backoff, with the others
-- (returns AGAIN: not settled yet); otherwise the final value or error.
function Run:result(item, now)
  local v, meta = item.handle:result()
  item.handle = nil
  local sender = self.sender
  if v ~= nil then
    sender:exchange(item.method, v, meta, item.tries, item.sent_at)
    return v
  end
  local what, wait = sender:after_failure(item.method, meta, item.attempt, item.renewed, item.call_deadline)
  sender:exchange(item.method, nil, meta, item.tries, item.sent_at, what, wait)
  if what == "renew" then
    item.renewed = true
    local ok, rerr = sender:renew(item.generation, item.call_deadline)
    if not ok then return nil, sender:finish(rerr, item.attempt) end
    self.stats.resent = self.stats.resent + 1
    self:send(item)
    return AGAIN
  elseif what == "retry" then
    item.attempt = item.attempt + 1
    item.retry_at = now + wait
    self.stats.resent = self.stats.resent + 1
    self.retrying[#self.retrying + 1] = item
    return AGAIN
  end
  return nil, sender:finish(meta, item.attempt)
end

-- An instance exists: schedule its first poll.
function Run:created(item, decoded, now)
  local inst = async.instance(self.client, item.id, decoded)
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
  planned = batched(planned + poll_gap(planned - inst.started, o))
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
  local v, err = self:result(item, now)
  if v == AGAIN then return end -- goes again (renewed token, or a retry after its backoff)
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
    local report, rerr = require("sfreports.report").new(v)
    if not report then rerr.report_id = rerr.report_id or item.id end
    return self:finish(item, report, rerr)
  elseif state == "post" then
    return self:created(item, v, now)
  end
  return self:polled(item, v, now)
end

-- Whether a request has finished: seen in some perform() result, or (when `ask`, and the
-- handle can tell) finished while another loop drove the engine and took the perform()
-- result.
local function finished(h, ask)
  if finished_handles[h] then return true end
  if not ask then return false end
  local done = h.done
  return done ~= nil and done(h) == true
end

-- Collects the finished requests of this run. ask: also ask each handle (see drive).
function Run:reap(ask)
  local inflight, kept, done = self.inflight, {}, {}
  for _, item in ipairs(inflight) do
    if finished(item.handle, ask) then
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

-- One engine turn: runs transfers, waiting up to `wait` seconds for activity. The
-- handles this turn's perform() reported are collected; each in-flight handle is asked
-- itself (a call into the engine per request) only on a turn that reported none, or
-- every 8th turn: a request that another loop's perform() reported is found then.
function Run:drive(wait)
  local stats = self.stats
  stats.turns = stats.turns + 1
  local list = self.transport:perform(wait)
  for i = 1, #list do finished_handles[list[i]] = true end
  return self:reap(#list == 0 or stats.turns % 8 == 0)
end

-- The next moment something is due without network activity: a retry or a poll that
-- may start.
function Run:next_due()
  local t = huge
  for _, item in ipairs(self.retrying) do
    if item.retry_at < t and has_room(self, item.kind) then t = item.retry_at end
  end
  if self.n_async >= self.max_fetch then return t end
  for _, item in ipairs(self.waiting) do
    if item.due < t then t = item.due end
  end
  return t
end

-- One turn of the loop: starts what may start, then waits for activity or what is due.
function Run:step()
  local now = monotime()
  self:launch(now)
  if self.open == 0 then return end
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

function Run:loop()
  while self.open > 0 do self:step() end
end

-- run_many taken one result at a time (sfreports.paging.plan streams its slices so):
-- M.stream(client, opts) -> stream (opts as run_many's); stream:add(entry) -> index: the
-- entry is queued and starts at once when the limits leave room; stream:take(index) ->
-- report | nil, err: drives the engine until that entry has finished (the others stay in
-- flight and may finish meanwhile; their results wait for their take), then forgets it.
local Stream = {}
Stream.__index = Stream

function M.stream(client, opts)
  opts = options.check(opts, options.MANY, "run_many", 2, options.RUN)
  local defaults = {}
  for k, v in pairs(opts) do
    if not options.MANY[k] then defaults[k] = v end
  end
  return setmetatable({ run = new_run(client, {}, opts, {}, {}), defaults = defaults, n = 0 }, Stream)
end

function Stream:add(entry)
  local i, run, errs = self.n + 1, self.run, {}
  self.n = i
  local item = make_items({ entry }, self.defaults, errs)[1]
  if not item then
    run.errs[i] = errs[1]
    return i
  end
  item.index = i
  local q = item.async and run.async_queue or run.sync_queue
  q[#q + 1] = item
  run.open = run.open + 1
  run:launch(monotime())
  return i
end

function Stream:take(i)
  local run = self.run
  while run.reports[i] == nil and run.errs[i] == nil do
    if run.open <= 0 then error("sfreports: stream:take of an entry never added", 2) end
    run:step()
  end
  local report, err = run.reports[i], run.errs[i]
  run.reports[i], run.errs[i] = nil, nil
  return report, err
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
-- max_sync, max_async, deletes, resent }. Each request follows the client's policy
-- (sfreports.send: deadline, retries, token renewal) while the others stay in flight;
-- failures are reported in place.
function M.run_many(client, list, opts)
  if type(list) ~= "table" then
    error("sfreports: run_many expects a list of report ids or run tables, got " .. type(list), 2)
  end
  opts = options.check(opts, options.MANY, "run_many", 2, options.RUN)
  local run_defaults = {}
  for k, v in pairs(opts) do
    if not options.MANY[k] then run_defaults[k] = v end
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
