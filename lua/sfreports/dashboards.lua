-- sfreports.dashboards: the dashboards of the Reports and Dashboards REST API (list,
-- results, status, refresh and wait, describe, clone, save, delete). The client's thin
-- methods (client:dashboards(), client:dashboard(id, opts), ...) call the functions here
-- with the client; every request goes through client:send, so it follows the client's
-- policy (deadline, retries, token renewal, secret scrubbing) on whichever engine the
-- client has (libcurl, or cosockets inside nginx).
--
--   dashboards.list(client) -> { { id, name, url, status_url, raw } } | nil, err
--   dashboards.get(client, id, opts) -> dashboard (sfreports.dashboards.model) | nil, err
--       opts.filters = { ["Region"] = "EMEA" } (see sfreports.dashboards.filters),
--       opts.running_user = user id ("005..."), opts.components = { component ids }
--       (POST { componentIds } for just those), opts.timeout (the call's budget)
--   dashboards.status(client, id, opts) -> { components = { { id, refresh_status,
--       refresh_date } }, running, raw } | nil, err   (opts: filters, running_user, timeout)
--   dashboards.refresh(client, id, opts) -> refresh handle (sfreports.dashboards.refresh)
--       | nil, err. A refresh already in progress is not an error: the handle waits on
--       it (handle.already_running). The 200 refreshes/hour limit is a `limit` error.
--   dashboards.describe(client, id, opts) -> dashboardMetadata (decoded) | nil, err;
--       opts.cached = true reuses this client's last describe of the dashboard
--   dashboards.clone(client, id, name_or_opts) -> { id, name, raw } | nil, err
--       (name_or_opts: a new name, or { name =, folder_id = })
--   dashboards.save(client, id, changes) -> dashboard | nil, err (PATCH). changes: name,
--       description, metadata (more dashboardMetadata fields, sent as given), filters
--       (saved as sticky filters: resolved like opts.filters, sent with
--       isStickyFilterSave=true)
--   dashboards.delete(client, id) -> true | nil, err
--
-- Ids are checked before any request: a dashboard id starts with 01Z, a running user's
-- with 005, a component's with 01a; each is 15 or 18 letters and digits with a valid
-- case checksum (sfreports.ids). Filters are resolved through the dashboard's metadata,
-- fetched once per client and dashboard (describe) and kept: unknown filters or options
-- are `invalid` errors naming what exists, and no results request is sent.
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local json = require "sfreports.json"
local options = require "sfreports.options"
local model = require "sfreports.dashboards.model"
local dfilters = require "sfreports.dashboards.filters"
local refresh = require "sfreports.dashboards.refresh"

local type, ipairs, pairs, next, setmetatable, error = type, ipairs, pairs, next, setmetatable, error
local format, find, lower, concat = string.format, string.find, string.lower, table.concat

local M = {}

M.model, M.filters = model, dfilters
M.DASHBOARD_PREFIX, M.USER_PREFIX, M.COMPONENT_PREFIX = "01Z", "005", "01a"

-- Dashboard metadata per client (weak: a client that is collected takes its cache along),
-- then per dashboard (18-character id).
local cache = setmetatable({}, { __mode = "k" })

local function cache_of(client)
  local c = cache[client]
  if not c then
    c = {}
    cache[client] = c
  end
  return c
end

local function forget(client, id)
  local c = cache[client]
  if c then c[ids.to18(id)] = nil end
end

local function check(id, prefix, what, dashboard_id)
  local ok, why = ids.check_prefixed(id, prefix, what)
  if not ok then return nil, errors.invalid(why, { dashboard_id = dashboard_id }) end
  return id
end

local function check_dashboard(id)
  return check(id, M.DASHBOARD_PREFIX, "dashboard id")
end

-- Adds the dashboard id to an error from a request.
local function failed(err, id)
  if type(err) == "table" then err.dashboard_id = err.dashboard_id or id end
  return nil, err
end

local function path(client, fmt, ...)
  return client:path(fmt, ...)
end

---------------------------------------------------------------------------
-- metadata and query parameters

-- The metadata object of a describe (or results) body: its dashboardMetadata, or the
-- body itself when it is the metadata.
local function metadata_of(decoded)
  if type(decoded) ~= "table" then return nil end
  if type(decoded.dashboardMetadata) == "table" then return decoded.dashboardMetadata end
  if decoded.filters ~= nil or decoded.components ~= nil or decoded.attributes ~= nil then return decoded end
  return nil
end

function M.describe(client, id, opts)
  local did, err = check_dashboard(id)
  if not did then return nil, err end
  local key = ids.to18(did)
  if opts and opts.cached and cache_of(client)[key] then return cache_of(client)[key] end
  local decoded, rerr = client:send({ method = "GET", path = path(client, "dashboards/%s/describe", did),
    timeout = opts and opts.timeout })
  if decoded == nil then return failed(rerr, did) end
  local md = metadata_of(decoded)
  if not md then
    return nil, errors.new("decode", format("the describe of dashboard %s is not dashboard metadata", did),
      { dashboard_id = did, retryable = false })
  end
  cache_of(client)[key] = md
  return md
end

-- The query parameters of a results, status or refresh request: runningUser and
-- filter1..3. Returns the query string ("" or "?..."), or nil and an `invalid` error.
local function query_for(client, id, opts)
  local parts = {}
  if opts.running_user ~= nil then
    local uid, err = check(opts.running_user, M.USER_PREFIX, "running user id", id)
    if not uid then
      err.option = "running_user"
      return nil, err
    end
    parts[#parts + 1] = "runningUser=" .. uid
  end
  local selected = {}
  if opts.filters ~= nil and next(opts.filters) ~= nil then
    local md, merr = M.describe(client, id, { cached = true })
    if not md then return nil, merr end
    local resolved, rerr = dfilters.resolve(md, opts.filters, id)
    if not resolved then return nil, rerr end
    for n = 1, dfilters.MAX do
      local v = resolved["filter" .. n]
      if v then
        parts[#parts + 1] = "filter" .. n .. "=" .. v
        selected["filter" .. n] = v
      end
    end
  end
  return #parts > 0 and ("?" .. concat(parts, "&")) or "", selected
end

local function component_ids(list, id)
  if type(list) ~= "table" then return nil end
  local out = json.array({})
  for i, cid in ipairs(list) do
    local ok, err = check(cid, M.COMPONENT_PREFIX, "component id", id)
    if not ok then
      err.option = "components"
      return false, err
    end
    out[i] = cid
  end
  if #out == 0 then
    error("sfreports: option 'components' must list at least one component id", 4)
  end
  return out
end

---------------------------------------------------------------------------
-- results

-- GET (or POST with componentIds) the results with a ready query string.
local function results(client, id, query, components, timeout)
  local req = { method = "GET", path = path(client, "dashboards/%s", id) .. (query or ""), timeout = timeout }
  if components then
    local list, cerr = component_ids(components, id)
    if list == false then return nil, cerr end
    req.method, req.body = "POST", { componentIds = list }
  end
  local decoded, err = client:send(req)
  if decoded == nil then return failed(err, id) end
  local dash, derr = model.dashboard(decoded, id)
  if not dash then return nil, derr end
  -- what a describe would give: later filters resolve without one
  local key = ids.to18(id)
  if not cache_of(client)[key] then cache_of(client)[key] = dash.metadata end
  return dash
end

function M.get(client, id, opts)
  opts = options.check(opts, options.DASHBOARD, "client:dashboard", 3)
  local did, err = check_dashboard(id)
  if not did then return nil, err end
  if opts.components ~= nil then -- checked before the metadata may be fetched for the filters
    local ok, cerr = component_ids(opts.components, did)
    if ok == false then return nil, cerr end
  end
  local query, selected = query_for(client, did, opts)
  if not query then return nil, selected end
  local dash, rerr = results(client, did, query, opts.components, opts.timeout)
  if not dash then return nil, rerr end
  dash.selected = selected
  return dash
end

function M.list(client, opts)
  local decoded, err = client:send({ method = "GET", path = path(client, "dashboards"),
    timeout = opts and opts.timeout })
  if decoded == nil then return nil, err end
  if type(decoded) ~= "table" or (next(decoded) ~= nil and decoded[1] == nil) then
    return nil, errors.new("decode", "the dashboard list is not a JSON array", { retryable = false })
  end
  local out = {}
  for i, d in ipairs(decoded) do
    if type(d) ~= "table" or type(d.id) ~= "string" then
      return nil, errors.new("decode", format("dashboard list entry %d is not an object with an id", i),
        { retryable = false })
    end
    out[i] = { id = d.id, name = d.name, url = d.url, status_url = d.statusUrl, raw = d }
  end
  return out
end

---------------------------------------------------------------------------
-- status and refresh

local function status(client, id, query, timeout)
  local decoded, err = client:send({ method = "GET", path = path(client, "dashboards/%s/status", id) .. (query or ""),
    timeout = timeout })
  if decoded == nil then return failed(err, id) end
  return model.status(decoded, id)
end

function M.status(client, id, opts)
  opts = options.check(opts, options.DASHBOARD_REFRESH, "client:dashboard_status", 3)
  local did, err = check_dashboard(id)
  if not did then return nil, err end
  local query, qerr = query_for(client, did, opts)
  if not query then return nil, qerr end
  return status(client, did, query, opts.timeout)
end

local FETCH = { status = status, results = results }

-- Whether a failed PUT says a refresh of this dashboard is already running.
local function in_progress(err)
  return type(err) == "table" and err.kind == "api" and type(err.message) == "string"
    and find(lower(err.message), "already in progress", 1, true) ~= nil
end

-- Whether a failed PUT is the hourly refresh limit (the classifier already makes most of
-- them `limit`: REQUEST_LIMIT_EXCEEDED, or a 400/403 whose message names a limit).
local function refresh_limit(err)
  if type(err) ~= "table" or err.kind == "limit" then return false end
  local msg = type(err.message) == "string" and lower(err.message) or ""
  return (err.status == 400 or err.status == 403) and find(msg, "refresh", 1, true) ~= nil
    and (find(msg, "per hour", 1, true) ~= nil or find(msg, "limit", 1, true) ~= nil)
end

function M.refresh(client, id, opts)
  opts = options.check(opts, options.DASHBOARD_REFRESH, "client:refresh_dashboard", 3)
  local did, err = check_dashboard(id)
  if not did then return nil, err end
  local query, qerr = query_for(client, did, opts)
  if not query then return nil, qerr end
  local decoded, rerr = client:send({ method = "PUT", path = path(client, "dashboards/%s", did) .. query,
    timeout = opts.timeout })
  if decoded == nil then
    if in_progress(rerr) then
      return refresh.new(client, did, FETCH, { query = query, already_running = true })
    end
    if refresh_limit(rerr) then rerr.kind, rerr.retryable = "limit", true end
    return failed(rerr, did)
  end
  local status_url = type(decoded) == "table" and type(decoded.statusUrl) == "string" and decoded.statusUrl or nil
  return refresh.new(client, did, FETCH, { query = query, status_url = status_url })
end

---------------------------------------------------------------------------
-- clone, save, delete

-- The id of a dashboard in a clone answer (its metadata, a results body, or a list entry).
local function answer_id(decoded)
  if type(decoded) ~= "table" then return nil end
  local md = metadata_of(decoded) or decoded
  local attrs = type(md.attributes) == "table" and md.attributes or {}
  for _, v in ipairs({ md.id or false, attrs.dashboardId or false, decoded.id or false }) do
    if type(v) == "string" and ids.check_prefixed(v, M.DASHBOARD_PREFIX) then return v, md end
  end
  return nil
end

function M.clone(client, id, name)
  local did, err = check_dashboard(id)
  if not did then return nil, err end
  local body = json.object({})
  if type(name) == "string" then
    body.name = name
  elseif type(name) == "table" then
    options.check(name, { name = "string", folder_id = "string" }, "client:clone_dashboard", 3)
    body.name, body.folderId = name.name, name.folder_id
  elseif name ~= nil then
    error("sfreports: client:clone_dashboard takes a new name (string) or { name =, folder_id = }, got "
      .. type(name), 3)
  end
  local decoded, rerr = client:send({ method = "POST", path = path(client, "dashboards?cloneId=%s", did), body = body })
  if decoded == nil then return failed(rerr, did) end
  local new_id, md = answer_id(decoded)
  if not new_id then
    return nil, errors.new("decode", format("the clone of dashboard %s came back without a dashboard id", did),
      { dashboard_id = did, retryable = false })
  end
  local attrs = type(md.attributes) == "table" and md.attributes or {}
  local new_name = md.name or attrs.dashboardName
  return { id = new_id, name = type(new_name) == "string" and new_name or nil, source_id = did, raw = decoded }
end

function M.save(client, id, changes)
  changes = options.check(changes, options.DASHBOARD_SAVE, "client:save_dashboard", 3)
  local did, err = check_dashboard(id)
  if not did then return nil, err end
  local md = json.object({})
  for k, v in pairs(changes.metadata or {}) do md[k] = v end
  if changes.name ~= nil then md.name = changes.name end
  if changes.description ~= nil then md.description = changes.description end
  local query = ""
  if changes.filters ~= nil and next(changes.filters) ~= nil then
    local q, qerr = query_for(client, did, { filters = changes.filters })
    if not q then return nil, qerr end
    query = "?isStickyFilterSave=true&" .. q:sub(2)
  elseif next(md) == nil then
    error("sfreports: client:save_dashboard needs a change (name, description, metadata or filters)", 3)
  end
  local decoded, rerr = client:send({ method = "PATCH", path = path(client, "dashboards/%s", did) .. query,
    body = { dashboardMetadata = md } })
  if decoded == nil then return failed(rerr, did) end
  forget(client, did)
  return model.dashboard(decoded, did)
end

function M.delete(client, id)
  local did, err = check_dashboard(id)
  if not did then return nil, err end
  local ok, rerr = client:send({ method = "DELETE", path = path(client, "dashboards/%s", did) })
  if ok == nil then return failed(rerr, did) end
  forget(client, did)
  return true
end

return M
