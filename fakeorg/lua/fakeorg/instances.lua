-- fakeorg.instances: asynchronous report runs (POST .../instances), kept in the
-- fakeorg_instances shared dict so every worker sees them. Status is derived from the
-- time since the request: New -> Running -> Success (or Error / Running forever,
-- depending on the report's catalog entry).
local util = require "fakeorg.util"
local data = require "fakeorg.data"
local state = require "fakeorg.state"

local ngx = ngx
local ipairs = ipairs
local null = util.null

local instances = {}

local OWNER_ID = data.owners[1].id
instances.OWNER_ID = OWNER_ID

-- The user new instances belong to: data.owners[config instance_owner] (1, the user the
-- access token and /services/oauth2/userinfo stand for; another one makes instances of
-- "another user" for the specs of recurring access).
function instances.owner_id()
  local n = math.floor(tonumber(state.config("instance_owner")) or 1)
  local owner = data.owners[n] or data.owners[1]
  return owner.id
end

local function dict() return ngx.shared.fakeorg_instances end

local function iso_time(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

-- Creates an instance; override = reportMetadata (already validated) or nil.
function instances.create(report, details, override)
  local n = state.next_seq()
  local id = data.make_id("0LG", 7000000 + n)
  local inst = {
    id = id, seq = n, report_id = report.id, report_key = report.key,
    -- instance_backdate: the run looks requested that many seconds ago (old instances)
    requested = ngx.now() - state.config("instance_backdate"), delay = state.config("async_delay"),
    details = details, override = override, mode = report.async or "normal",
    owner = instances.owner_id(),
  }
  dict():set(id, util.encode(inst))
  instances.count_running()
  return inst
end

-- Records in the stats the most instances running at once (created, not yet finished):
-- what proves that a client's async runs overlapped, without a clock on the client side.
function instances.count_running()
  local running = 0
  for _, key in ipairs(dict():get_keys(0)) do
    local raw = dict():get(key)
    local inst = raw and util.decode(raw)
    if inst and inst.requested then
      local status = instances.status(inst)
      if status ~= "Success" and status ~= "Error" then running = running + 1 end
    end
  end
  state.record_max("max_running_instances", running)
end

function instances.get(report, id)
  local raw = dict():get(id)
  if not raw then return nil end
  local inst = util.decode(raw)
  if inst.report_id ~= report.id then return nil end
  if inst.override == null then inst.override = nil end
  return inst
end

function instances.delete(report, id)
  if not instances.get(report, id) then return false end
  dict():delete(id)
  return true
end

-- Status and completion time (seconds) at now.
function instances.status(inst)
  local elapsed = ngx.now() - inst.requested
  if inst.mode == "never" then return elapsed < inst.delay / 3 and "New" or "Running" end
  if elapsed >= inst.delay then
    return inst.mode == "error" and "Error" or "Success", inst.requested + inst.delay
  end
  return elapsed < inst.delay / 3 and "New" or "Running"
end

-- The instance object of POST responses and instance lists.
function instances.summary(inst, base)
  local status, done = instances.status(inst)
  local finished = status == "Success" or status == "Error"
  return {
    id = inst.id, status = status, ownerId = inst.owner or OWNER_ID, queryable = false,
    hasDetailRows = inst.details, requestDate = iso_time(inst.requested),
    completionDate = finished and iso_time(done) or null,
    url = status == "Error" and null or (base .. "/reports/" .. inst.report_id .. "/instances/" .. inst.id),
  }
end

-- attributes of an instance result (type ReportInstance).
function instances.attributes(inst, report)
  local s = instances.summary(inst, "")
  return { type = "ReportInstance", id = inst.id, status = s.status, ownerId = s.ownerId,
    completionDate = s.completionDate, requestDate = s.requestDate, reportId = report.id,
    reportName = report.name, queryable = false }
end

-- All instances of a report, oldest request first.
function instances.list(report, base)
  local found = {}
  for _, key in ipairs(dict():get_keys(0)) do
    local inst = instances.get(report, key)
    if inst then found[#found + 1] = inst end
  end
  table.sort(found, function(a, b) return a.seq < b.seq end)
  local out = {}
  for i, inst in ipairs(found) do out[i] = instances.summary(inst, base) end
  return out
end

return instances
