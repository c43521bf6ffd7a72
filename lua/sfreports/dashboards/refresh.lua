-- sfreports.dashboards.refresh: the handle of a dashboard refresh (client:refresh_dashboard),
-- with :poll() and :wait() behaving like a report instance's (sfreports.async): the same
-- polling schedule (async.poll_gap, growing with the time the refresh has run, with
-- async.jitter), the same deadline and the same sleep strategies (async.sleeper:
-- ngx.sleep inside nginx, a user `sleep`, `yield = true`, else a blocking sleep).
--
--   handle.dashboard_id, .status ("RUNNING" | "IDLE"), .components (per-component
--   status: { id, refresh_status, refresh_date }), .already_running (true when the PUT
--   found a refresh in progress and this handle waits on that one), .status_url, .polls
--   handle:poll()      one status check, never waiting: handle (updated) and, once every
--                      component is IDLE, the refreshed dashboard; or nil, err
--   handle:wait(opts)  waits for the refresh, then returns the refreshed dashboard (with
--                      the filters and running user the refresh was made with); a deadline
--                      gives a `timeout` error keeping dashboard_id.
--                      opts: timeout (default 600 s), poll_interval, poll_max, sleep, yield,
--                      components (ids: only those components' results)
-- The requests themselves are made by sfreports.dashboards (given as `fetch`).
local core = require "sfreports.core"
local async = require "sfreports.async"
local errors = require "sfreports.errors"
local options = require "sfreports.options"
local sleep_mod = require "sfreports.sleep"

local tostring, setmetatable, getmetatable, error, type = tostring, setmetatable, getmetatable, error, type
local format, max, min = string.format, math.max, math.min
local monotime = core.monotime

local M = {}

local Refresh = {}
Refresh.__index = Refresh
M.Refresh = Refresh

-- fetch = { status = function(client, id, query, timeout) -> status | nil, err,
--           results = function(client, id, query, components, timeout) -> dashboard | nil, err }
-- fields: status_url, already_running, query (the filter and running-user parameters).
function M.new(client, dashboard_id, fetch, fields)
  return setmetatable({
    client = client, dashboard_id = dashboard_id, _fetch = fetch, query = fields.query,
    status_url = fields.status_url, already_running = fields.already_running == true,
    status = "RUNNING", components = {}, polls = 0, started = monotime(),
  }, Refresh)
end

function Refresh:__tostring()
  return format("sfreports.dashboard_refresh(%s, %s)", tostring(self.dashboard_id), tostring(self.status))
end

local function check_handle(h, where)
  if getmetatable(h) ~= Refresh then
    error(format("sfreports: %s expects a dashboard refresh (from client:refresh_dashboard), got %s", where,
      type(h)), 4)
  end
end

local function poll(h, timeout, components)
  local st, err = h._fetch.status(h.client, h.dashboard_id, h.query, timeout)
  if not st then return nil, err end
  h.polls = h.polls + 1
  h.components = st.components
  h.status = st.running and "RUNNING" or "IDLE"
  if st.running then return h end
  local dash, derr = h._fetch.results(h.client, h.dashboard_id, h.query, components, timeout)
  if not dash then return nil, derr end
  return h, dash
end

-- One status check; never waits (see the header).
function Refresh:poll()
  check_handle(self, "poll")
  return poll(self, nil, nil)
end

local function timeout_error(h, timeout)
  return errors.new("timeout", format("dashboard %s is still refreshing after %gs; wait for it again"
    .. " (client:refresh_dashboard finds the refresh in progress) or read its status with"
    .. " client:dashboard_status", tostring(h.dashboard_id), timeout),
    { dashboard_id = h.dashboard_id, retryable = true })
end

-- Waits until every component is IDLE, then returns the dashboard (see the header).
function Refresh:wait(opts)
  check_handle(self, "wait")
  opts = options.check(opts, options.DASHBOARD_WAIT, "dashboard refresh wait", 2)
  local sleep = async.sleeper(self.client, opts)
  local timeout = opts.timeout or async.DEFAULT_TIMEOUT
  local now = monotime()
  local deadline = now + timeout
  local started = self.started or now
  -- the first poll comes after the schedule's first gap, counted from the PUT
  local due = started + async.jitter(async.poll_gap(0, opts))
  while true do
    if due > now then sleep(max(min(due, deadline) - now, sleep_mod.MIN_SLEEP)) end
    local ok, dash = poll(self, max(deadline - monotime(), async.MIN_POLL_BUDGET), opts.components)
    if not ok then return nil, dash end
    if dash then return dash end
    now = monotime()
    if now >= deadline then return nil, timeout_error(self, timeout) end
    due = now + async.jitter(async.poll_gap(now - started, opts))
  end
end

return M
