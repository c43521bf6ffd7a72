-- sfreports.reuse: recurring access to asynchronous results. Salesforce keeps the results
-- of an asynchronous run for a 24-hour rolling period; a run with the same metadata that
-- finished recently can be read instead of starting a new one (each run counts against
-- the org's hourly limits and takes the report's run time).
--
--   client:run_async(id, { reuse = 300, filters = ... })  -- reuse a run <= 300 s old, else start one
--   client:latest(id, { within = 3600, filters = ... })   -- inst, report | false | nil, err
--
-- An instance is reused only when all of these hold (when unsure: not reused):
--   * its status is Success and its completionDate is within the window (not in the future
--     by more than CLOCK_SKEW seconds);
--   * its ownerId is the current user's (learned once per client from
--     /services/oauth2/userinfo, or given as opts.owner). An instance without ownerId is
--     accepted: the instance list holds the runs the current user requested. When the
--     current user cannot be learned, instances that name an owner are not reused;
--   * its result's reportMetadata matches what this call would send, field by field:
--     reportFilters (column, operator, value, filterType), reportBooleanFilter,
--     detailColumns, groupingsDown/Across, aggregates, sortBy, topRows, hasDetailRows,
--     reportFormat, standardDateFilter, and any other key the call sends. A relative date
--     filter (THIS_MONTH ...) is reused only when the instance was requested on the same
--     UTC day as now (its dates move with the calendar).
-- At most MAX_CANDIDATES of the newest candidates are fetched to compare their metadata.
-- A candidate that answers 404 (expired or deleted) is skipped; whatever fails while
-- looking (the list, userinfo, a fetch) makes run_async start a new run (inst.reuse_error
-- keeps why), never fail because of the lookup.
local json = require "sfreports.json"

local type, pairs, ipairs, tostring, tonumber, setmetatable = type, pairs, ipairs, tostring, tonumber, setmetatable
local lower, upper, gsub, match, floor = string.lower, string.upper, string.gsub, string.match, math.floor
local sort = table.sort

local null = json.null

local M = {}

M.DEFAULT_WITHIN = 86400 -- latest(): Salesforce keeps results for 24 hours
M.MAX_CANDIDATES = 3     -- newest finished instances whose results are fetched to compare
M.CLOCK_SKEW = 300       -- seconds a completionDate may lie in the future (clock differences)

local function absent(v) return v == nil or v == null end

---------------------------------------------------------------------------
-- dates

local days_from_civil = require("sfreports.days").from_civil

-- Seconds since the epoch (UTC) of an ISO 8601 date-time as Salesforce writes them
-- ("2026-12-01T15:16:12Z", "2026-12-01T15:16:12.000+0000"), or nil.
function M.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, se, rest = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  rest = gsub(rest, "^%.%d+", "")
  local offset = 0
  if rest ~= "Z" and rest ~= "" then
    local sign, oh, om = match(rest, "^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se) - offset
end

---------------------------------------------------------------------------
-- metadata comparison

local function list(v)
  if absent(v) or type(v) ~= "table" then return {} end
  return v
end

local function order(v)
  if absent(v) then return "asc" end
  return lower(tostring(v))
end

local function text(v)
  if absent(v) then return "" end
  if v == true or v == false then return tostring(v) end
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

local NORMAL = {}

function NORMAL.reportFilters(v)
  local out = {}
  for i, f in ipairs(list(v)) do
    if type(f) ~= "table" then return { "?" } end
    out[i] = { text(f.column), lower(text(f.operator)), text(f.value),
      absent(f.filterType) and "fieldValue" or text(f.filterType) }
  end
  return out
end

function NORMAL.reportBooleanFilter(v)
  if absent(v) or v == "" then return nil end
  return upper((gsub(tostring(v), "%s+", "")))
end

local function groupings(v)
  local out = {}
  for i, g in ipairs(list(v)) do
    if type(g) ~= "table" then return { "?" } end
    out[i] = { text(g.name), order(g.sortOrder),
      absent(g.dateGranularity) and "None" or text(g.dateGranularity), text(g.sortAggregate) }
  end
  return out
end
NORMAL.groupingsDown, NORMAL.groupingsAcross = groupings, groupings

function NORMAL.sortBy(v)
  local out = {}
  for i, s in ipairs(list(v)) do
    if type(s) ~= "table" then return { "?" } end
    out[i] = { text(s.sortColumn), order(s.sortOrder) }
  end
  return out
end

function NORMAL.topRows(v)
  if absent(v) then return nil end
  if type(v) ~= "table" then return { "?" } end
  return { text(v.rowLimit), order(v.direction) }
end

local function strings(v)
  local out = {}
  for i, s in ipairs(list(v)) do out[i] = text(s) end
  return out
end
NORMAL.detailColumns, NORMAL.aggregates = strings, strings

function NORMAL.hasDetailRows(v) return v == true end

function NORMAL.reportFormat(v)
  if absent(v) then return nil end
  return text(v)
end

-- A relative duration is kept with a marker: the caller checks the request day.
function NORMAL.standardDateFilter(v)
  if absent(v) or type(v) ~= "table" then return nil end
  local duration = absent(v.durationValue) and "CUSTOM" or text(v.durationValue)
  if duration == "CUSTOM" then
    return { text(v.column), duration, text(v.startDate), text(v.endDate) }
  end
  return { text(v.column), duration }
end

-- Keys compared whether or not the call sends them (the saved value stands otherwise).
M.COMPARED = { "reportFilters", "reportBooleanFilter", "detailColumns", "groupingsDown",
  "groupingsAcross", "aggregates", "sortBy", "topRows", "hasDetailRows", "reportFormat",
  "standardDateFilter" }

-- Generic normal form of any other key: null, {} and absent are the same; tables compare
-- as canonical JSON text (sorted keys).
local function canonical(v)
  if absent(v) then return "" end
  if type(v) ~= "table" then return text(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  if #keys == 0 then return "" end
  sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    parts[i] = k .. "=" .. canonical(val)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
M.canonical = canonical

local function same(a, b)
  return canonical(a) == canonical(b)
end

-- The reportMetadata a run would have: the saved one (describe) with what the call sends
-- over it, and hasDetailRows as the call asks. sent: a table or nil.
function M.expected(saved, sent, details)
  local md = {}
  for k, v in pairs(type(saved) == "table" and saved or {}) do md[k] = v end
  for k, v in pairs(sent or {}) do md[k] = v end
  if sent == nil or sent.hasDetailRows == nil then md.hasDetailRows = details end
  return md
end

-- True when the instance's reportMetadata (actual) matches expected; else false and the
-- first key that differs. sent: the keys the call sends (any of them is compared too).
function M.matches(expected, actual, sent)
  if type(actual) ~= "table" then return false, "reportMetadata" end
  for _, k in ipairs(M.COMPARED) do
    if not same(NORMAL[k](expected[k]), NORMAL[k](actual[k])) then return false, k end
  end
  for k in pairs(sent or {}) do
    if not NORMAL[k] and not same(expected[k], actual[k]) then return false, k end
  end
  return true
end

local function relative_dates(md)
  local sdf = type(md) == "table" and md.standardDateFilter
  return type(sdf) == "table" and not absent(sdf.durationValue) and sdf.durationValue ~= "CUSTOM"
end

---------------------------------------------------------------------------
-- the current user

local users = setmetatable({}, { __mode = "k" }) -- client -> user id | false (unknown)

-- The current user's id (an 18-character 005... id), or nil when it cannot be learned.
function M.user_id(client, given)
  if type(given) == "string" and given ~= "" then return given end
  local known = users[client]
  if known ~= nil then return known or nil end
  local info = client:send({ method = "GET", path = "/services/oauth2/userinfo" })
  local id = type(info) == "table" and type(info.user_id) == "string" and info.user_id or false
  users[client] = id
  return id or nil
end

-- Remembers the owner of an instance this client started: that is the current user.
function M.learn_owner(client, owner)
  if type(owner) == "string" and owner ~= "" and not users[client] then users[client] = owner end
end

---------------------------------------------------------------------------
-- finding an instance

local function same_id(a, b)
  return type(a) == "string" and type(b) == "string" and a:sub(1, 15) == b:sub(1, 15)
end

-- The newest finished instances in the window, newest first: { inst = decoded, done = t }.
local function candidates(listed, within, now, owner)
  local out = {}
  for _, d in ipairs(type(listed) == "table" and listed or {}) do
    local a = type(d) == "table" and (type(d.attributes) == "table" and d.attributes or d) or {}
    local done = M.parse_time(a.completionDate)
    local owner_ok = absent(a.ownerId) or (owner ~= nil and same_id(a.ownerId, owner))
    if a.status == "Success" and done and now - done <= within and done - now <= M.CLOCK_SKEW
      and owner_ok and type(a.id) == "string" then
      out[#out + 1] = { id = a.id, done = done, requested = M.parse_time(a.requestDate), n = #out + 1 }
    end
  end
  -- newest first; dates have whole seconds: the list's own order (oldest first) breaks ties
  sort(out, function(x, y)
    if x.done ~= y.done then return x.done > y.done end
    return x.n > y.n
  end)
  return out
end

local function utc_day(t) return floor(t / 86400) end

-- Looks for a finished instance of report id that matches the run this call would make.
-- opts: run options; within: seconds; owner: the caller's user id (optional).
-- Returns decoded, instance summary | false, why | nil, err.
function M.find(client, id, opts, within, owner)
  local sent, merr = client:run_metadata(id, opts)
  if merr then return nil, merr end
  local describe, derr = client:describe(id, { cached = true })
  if not describe then return nil, derr end
  local saved = type(describe) == "table" and describe.reportMetadata or nil
  local expected = M.expected(saved, sent, opts.details ~= false)
  local listed, lerr = client:send({ method = "GET", path = client:path("reports/%s/instances", id) })
  if listed == nil then return nil, lerr end
  local now = os.time()
  local user = M.user_id(client, owner)
  local found = candidates(listed, within, now, user)
  local why = #found == 0 and "no finished instance in the window" or nil
  for i = 1, math.min(#found, M.MAX_CANDIDATES) do
    local c = found[i]
    if relative_dates(expected) and not (c.requested and utc_day(c.requested) == utc_day(now)) then
      why = "a relative date filter and an instance of another day"
    else
      local decoded, ferr = client:fetch_instance_raw(id, c.id)
      if decoded == nil then
        if ferr.status ~= 404 then return nil, ferr end
        why = "instance " .. c.id .. " is gone (404)"
      elseif type(decoded) == "table" and decoded.factMap ~= nil then
        local ok, key = M.matches(expected, decoded.reportMetadata, sent)
        if ok then return decoded, c end
        why = "instance " .. c.id .. " differs in " .. key
      end
    end
  end
  return false, why
end

-- run_async with opts.reuse: a reused instance (inst.reused = true, inst.result = the
-- report, which inst:wait() returns without a request), or nil; why in the second value.
function M.reusable(client, id, opts, within, owner)
  local decoded, why = M.find(client, id, opts, within, owner)
  if not decoded then return nil, why end
  local report, rerr = require("sfreports.report").new(decoded)
  if not report then return nil, rerr end
  local inst = require("sfreports.async").instance(client, id, decoded)
  inst.reused, inst.result = true, report
  return inst
end

-- Splits the reuse options from run options: run options (a copy without them), the
-- window, the owner.
local function split(opts, window_key)
  local run = {}
  for k, v in pairs(opts) do run[k] = v end
  local within, owner = run[window_key], run.owner
  run[window_key], run.owner = nil, nil
  return run, within, owner
end

-- client:run_async with opts.reuse (checked): a reused instance, else a new run made by
-- fresh(client, id, run options) with inst.reuse_miss saying why. id: checked.
function M.run_async(client, fresh, id, opts)
  local run, within, owner = split(opts, "reuse")
  local why
  if within and within > 0 then
    local inst
    inst, why = M.reusable(client, id, run, within, owner)
    if inst then return inst end
  end
  local inst, err = fresh(client, id, run)
  if not inst then return nil, err end
  M.learn_owner(client, inst.owner_id)
  inst.reuse_miss = why
  return inst
end

-- client:latest (opts checked): inst, report | false | nil, err.
function M.latest(client, id, opts)
  local run, within, owner = split(opts, "within")
  local decoded, why = M.find(client, id, run, within or M.DEFAULT_WITHIN, owner)
  if decoded == nil then return nil, why end
  if decoded == false then return false end
  local report, rerr = require("sfreports.report").new(decoded)
  if not report then return nil, rerr end
  local inst = require("sfreports.async").instance(client, id, decoded)
  inst.reused = true
  return inst, report
end

return M
