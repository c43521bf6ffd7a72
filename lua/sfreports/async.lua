-- sfreports.async: asynchronous report instances and waiting for them.
-- An instance polls its own results resource (not the instance list): when it reports
-- Success, that same response already holds the results, so no extra fetch is needed.
-- Waiting never busy-waits; how it sleeps is chosen by `sleeper` (see below).
local core = require "sfreports.core"
local errors = require "sfreports.errors"

local type, setmetatable, format, random = type, setmetatable, string.format, math.random
local min = math.min

local M = {}

M.DEFAULT_TIMEOUT = 600      -- seconds a wait may take before a `timeout` error
M.DEFAULT_FIRST_POLL = 0.25  -- first poll comes soon: small reports finish fast
M.DEFAULT_POLL_MAX = 10      -- backoff cap
M.BACKOFF = 1.6

local Instance = {}
Instance.__index = Instance

local function attr(d, name)
  local a = type(d) == "table" and d.attributes
  if type(a) == "table" and a[name] ~= nil then return a[name] end
  return type(d) == "table" and d[name] or nil
end

-- Wraps a decoded instance (POST response, list entry, or instance results body).
function M.instance(client, report_id, decoded)
  return setmetatable({
    client = client,
    report_id = report_id,
    id = attr(decoded, "id"),
    status = attr(decoded, "status"),
    url = attr(decoded, "url"),
    owner_id = attr(decoded, "ownerId"),
    request_date = attr(decoded, "requestDate"),
    completion_date = attr(decoded, "completionDate"),
    has_detail_rows = attr(decoded, "hasDetailRows"),
    raw = decoded,
  }, Instance)
end

function Instance:__tostring()
  return format("sfreports.instance(%s, %s)", tostring(self.id), tostring(self.status))
end

-- One status check; never waits. Returns the instance (status updated) and, once the
-- status is Success, the report; or nil, err.
function M.poll(client, inst)
  local path = client:path("reports/%s/instances/%s", inst.report_id, inst.id)
  local decoded, err = client:request("GET", path)
  if not decoded then
    err.instance_id, err.report_id = inst.id, inst.report_id
    if err.status == 404 then
      err.message = format("report instance %s no longer exists (instances expire after 24 hours): %s",
        inst.id, err.message)
    end
    return nil, err
  end
  inst.status = attr(decoded, "status") or inst.status
  inst.completion_date = attr(decoded, "completionDate") or inst.completion_date
  inst.polls = (inst.polls or 0) + 1
  if inst.status == "Error" then
    return nil, errors.new("api", format("report instance %s ended in status Error", inst.id),
      { code = "INSTANCE_ERROR", instance_id = inst.id, report_id = inst.report_id })
  end
  if inst.status == "Success" and type(decoded) == "table" and decoded.factMap ~= nil then
    return inst, require("sfreports.report").new(decoded)
  end
  return inst
end

-- Chooses how to sleep: ngx.sleep inside nginx, a user's sleep function, a coroutine
-- yield of { sfreports = "sleep", seconds = s } when opts.yield, or a blocking sleep.
function M.sleeper(client, opts)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.sleep) == "function" and type(ngx.get_phase) == "function" then
    return ngx.sleep
  end
  local user = opts.sleep or (client and client._opts and client._opts.sleep)
  if user then return user end
  if opts.yield then
    local _, is_main = coroutine.running()
    if coroutine.running() == nil or is_main then
      error("sfreports: yield = true needs to run inside a coroutine", 3)
    end
    return function(s) coroutine.yield({ sfreports = "sleep", seconds = s }) end
  end
  return core.sleep
end

-- The backoff schedule: each delay grows by BACKOFF up to poll_max, with +-20% jitter so
-- that many waiters do not poll in lockstep.
function M.next_delay(prev, opts)
  local cap = opts.poll_max or M.DEFAULT_POLL_MAX
  local d = prev and min(prev * M.BACKOFF, cap) or (opts.poll_interval or M.DEFAULT_FIRST_POLL)
  return d, d * (0.8 + 0.4 * random())
end

local function cleanup(client, inst, opts, when)
  if opts.delete == true or opts.delete == when then
    client:delete_instance(inst.report_id, inst.id)
  end
end

-- Waits until the instance finishes. Returns the report, or nil, err. A deadline gives a
-- `timeout` error that keeps instance_id so the caller can come back later.
-- opts: timeout, poll_interval, poll_max, sleep, yield, delete (true | "timeout" | "after").
function M.wait(client, inst, opts)
  opts = opts or {}
  local sleep = M.sleeper(client, opts)
  local deadline = core.monotime() + (opts.timeout or M.DEFAULT_TIMEOUT)
  local delay
  while true do
    local ok, report = M.poll(client, inst)
    if not ok then
      cleanup(client, inst, opts, "after")
      return nil, report
    end
    if report then
      cleanup(client, inst, opts, "after")
      return report
    end
    local now = core.monotime()
    if now >= deadline then
      cleanup(client, inst, opts, "timeout")
      return nil, errors.new("timeout", format("report instance %s still %s after %gs; fetch it later with its id",
        inst.id, tostring(inst.status), opts.timeout or M.DEFAULT_TIMEOUT),
        { instance_id = inst.id, report_id = inst.report_id, retryable = true })
    end
    local jittered
    delay, jittered = M.next_delay(delay, opts)
    sleep(min(jittered, deadline - now))
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
