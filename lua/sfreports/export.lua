-- sfreports.export: Salesforce's formatted export (client:export, client:export_many).
--
-- A report run (GET, or POST with reportMetadata when run options change it) sent with
-- `Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`; the
-- answer is the .xlsx Salesforce builds (its formatting, its title rows). The body is
-- never held whole: the request carries a sink (ropts.sink, described in
-- src/request.c), which both engines feed as bytes arrive (libcurl: between curl turns
-- from a bounded buffer; cosockets: per chunk read). Errors are JSON even when an xlsx
-- was asked for and are classified as usual; a 2xx that is not an xlsx (HTML, JSON) is
-- an error. The client's Sender gives retries, token renewal and the deadline; a try is
-- retried only while nothing has reached the destination.
--
--   local info, err = client:export(id, { to = "pipeline.xlsx", filters = {...} })
--   -- info = { bytes =, filename = (Content-Disposition), path =, content_type =, status = }
--
-- Destinations (`to`):
--   * a path: written to a temporary file in the same folder (".NAME.sfreports-....tmp"),
--     renamed over NAME only when the whole file arrived; on any failure (or a raise)
--     the temporary file is removed, so a partial file never carries the final name;
--   * a file handle (anything with :write): written as it arrives, not closed;
--   * a function(chunk): called per piece; returning false, or nil and an error, stops
--     the transfer (an `io` error).
-- on_start(info) is called before the first byte goes out, with { filename,
-- content_type, status, headers } (an nginx handler sets its own headers there).
--
-- export_many(list, opts): entries { id =, to =, <run options> } (opts: defaults for
-- every entry). Salesforce warns against concurrent large formatted exports, so they
-- run one at a time unless opts.concurrency says otherwise; then up to that many are in
-- flight together (transport:start), and a failure the policy could cure (nothing
-- received yet) is tried again alone through export(). Returns results, errs (arrays in
-- input order).
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local options = require "sfreports.options"
local retry = require "sfreports.retry"

local type, pairs, ipairs, pcall, error, tostring = type, pairs, ipairs, pcall, error, tostring
local format, match, gsub, sub = string.format, string.match, string.gsub, string.sub
local char, tonumber = string.char, tonumber

local M = {}

M.XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

-- Options that say where the file goes, not how the report runs.
local OWN = { to = true, on_start = true, timeout = true, id = true }

---------------------------------------------------------------------------------------
-- Content-Disposition

local function unquote(s)
  return (gsub(s, "\\(.)", "%1"))
end

-- A file name fit to show or to use in a folder: the last path component, without
-- control characters; nil when nothing is left.
local function safe_name(name)
  if type(name) ~= "string" then return nil end
  name = match(name, "([^/\\]*)$") or name
  name = gsub(name, "[%c\127]", "")
  if name == "" or name == "." or name == ".." then return nil end
  return name
end

-- The file name of a Content-Disposition header (filename*=UTF-8''... preferred).
function M.filename(disposition)
  if type(disposition) ~= "string" then return nil end
  local ext = match(disposition, "[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]%*%s*=%s*[%w%-]*'[^']*'([^;%s]+)")
  if ext then
    local decoded = gsub(ext, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end)
    local name = safe_name(decoded)
    if name then return name end
  end
  local _, qstart = string.find(disposition, '[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]%s*=%s*"')
  if qstart then
    -- a quoted string: up to the first '"' that is not escaped by a backslash
    local i, n = qstart + 1, #disposition
    while i <= n do
      local c = sub(disposition, i, i)
      if c == "\\" then i = i + 2
      elseif c == '"' then break
      else i = i + 1 end
    end
    return safe_name(unquote(sub(disposition, qstart + 1, i - 1)))
  end
  return safe_name(match(disposition, "[Ff][Ii][Ll][Ee][Nn][Aa][Mm][Ee]%s*=%s*([^;%s]+)"))
end

---------------------------------------------------------------------------------------
-- destinations

local tmpname = require "sfreports.tmpname"

local function io_error(message, fields)
  fields = fields or {}
  fields.retryable = false
  return errors.new("io", message, fields)
end

-- Returns a destination { write(chunk) -> ok, err; commit() -> true | nil, err;
-- abort(); path } or nil, err (a path whose temporary file cannot be made).
local function destination(to)
  local t = type(to)
  if t == "string" then
    if to == "" or sub(to, -1) == "/" then return nil, io_error("export: 'to' " .. to .. " is not a file name") end
    local mode, final = tmpname.plan(to)
    local direct = mode == "direct" -- a device or FIFO: written in place, never renamed over
    local tmp = direct and to or tmpname.next_to(final)
    if not tmp then return nil, io_error("cannot write " .. to .. ": no temporary file name is free next to it") end
    local f, ferr = io.open(tmp, "wb")
    if not f then return nil, io_error("cannot write " .. to .. ": " .. tostring(ferr)) end
    local d = { path = to, tmp = tmp }
    function d.write(chunk) return f:write(chunk) end
    function d.abort()
      if f then pcall(f.close, f) end
      f = nil
      if not direct then os.remove(tmp) end
    end
    function d.commit()
      local ok, err = f:close()
      f = nil
      if ok and not direct then ok, err = os.rename(tmp, final) end
      if not ok then
        if not direct then os.remove(tmp) end
        return nil, io_error("cannot write " .. to .. ": " .. tostring(err))
      end
      return true
    end
    return d
  end
  local d = { commit = function() return true end, abort = function() end }
  if t == "function" then
    d.write = to
  else
    local ok, w = pcall(function() return to.write end)
    if not ok or w == nil then
      error("sfreports: export option 'to' must be a path, a function or have a :write method", 4)
    end
    function d.write(chunk) return to:write(chunk) end
  end
  return d
end

---------------------------------------------------------------------------------------
-- one export

local function run_options_of(opts)
  local o = {}
  for k, v in pairs(opts) do
    if not OWN[k] then o[k] = v end
  end
  return o
end

-- The request of an export: { method, path, body, headers } or nil, err.
local function describe_request(client, id, opts)
  local plan, err = client:run_plan(id, run_options_of(opts), "sync")
  if not plan then return nil, err end
  return { method = plan.method, body = plan.metadata, headers = { Accept = M.XLSX },
    path = client:path("reports/%s?includeDetails=%s", id, plan.details and "true" or "false") }
end

-- The sink the engines feed, writing to dest; state keeps bytes, filename, content type.
local function make_sink(dest, state, on_start)
  return function(chunk, headers)
    if headers then
      state.filename = M.filename(headers["content-disposition"])
      state.content_type = headers["content-type"]
      if on_start then
        on_start({ filename = state.filename, content_type = state.content_type, headers = headers })
      end
    end
    state.bytes = state.bytes + #chunk
    return dest.write(chunk)
  end
end

local function result_of(state, dest, meta)
  return { bytes = state.bytes, filename = state.filename, path = dest.path,
    content_type = state.content_type, status = type(meta) == "table" and meta.status or nil }
end

local function check(opts, where, level)
  opts = options.check(opts, options.EXPORT, where, level + 1)
  if opts.to == nil then error(format("sfreports: %s needs option 'to' (a path, a file handle or a function)",
    where), level + 1) end
  return opts
end

local function export_checked(client, report_id, opts)
  local ok, why = ids.check(report_id, "report id")
  if not ok then return nil, errors.invalid(why, { report_id = report_id }) end
  local req, rerr = describe_request(client, report_id, opts)
  if not req then return nil, rerr end
  local dest, derr = destination(opts.to)
  if not dest then return nil, derr end
  local state = { bytes = 0 }
  local sink = make_sink(dest, state, opts.on_start)
  local pok, v, meta = pcall(client.sender.call, client.sender, req.method, function(t, left)
    local value, m = t:request(req.method, req.path, req.body, req.headers, { sink = sink, timeout = left })
    if value == nil and type(m) == "table" and state.bytes > 0 then
      -- part of the file is out: never sent again (the engines say so too)
      m.retryable, m.streamed = false, m.streamed or state.bytes
    end
    return value, m
  end, opts.timeout)
  if not pok then
    dest.abort()
    error(v, 0)
  end
  if v == nil then
    dest.abort()
    if type(meta) == "table" then meta.report_id = meta.report_id or report_id end
    return nil, meta
  end
  local cok, cerr = dest.commit()
  if not cok then return nil, cerr end
  return result_of(state, dest, meta)
end

-- client:export(report_id, opts): see the top of this file.
function M.export(client, report_id, opts)
  return export_checked(client, report_id, check(opts, "export", 2))
end

---------------------------------------------------------------------------------------
-- batches

local function entry_options(entry, defaults, i)
  if type(entry) ~= "table" then
    error(format("sfreports: export_many entry %d must be a table { id =, to = }, got %s", i, type(entry)), 4)
  end
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(entry) do o[k] = v end
  return check(o, "export_many entry " .. i, 4)
end

-- Several exports in flight together (at most `limit`); a failure that the policy could
-- cure and that sent nothing out goes again alone through export().
local function export_concurrently(client, items, limit, results, errs)
  local t = client.transport
  local queue, active, again = {}, {}, {}
  for i, it in ipairs(items) do queue[i] = it end
  local qi, nactive = 1, 0
  local function start_next()
    while nactive < limit and qi <= #queue do
      local it = queue[qi]
      qi = qi + 1
      local req, rerr = describe_request(client, it.id, it.opts)
      local dest, derr
      if req then dest, derr = destination(it.opts.to) end
      if not req or not dest then
        errs[it.index] = rerr or derr
      else
        it.req, it.dest, it.state = req, dest, { bytes = 0 }
        local sink = make_sink(dest, it.state, it.opts.on_start)
        it.handle = t:start(req.method, req.path, req.body, req.headers,
          { sink = sink, timeout = it.opts.timeout or client.sender.timeout })
        active[it.handle] = it
        nactive = nactive + 1
      end
    end
  end
  local ok, err = pcall(start_next)
  while ok and nactive > 0 do
    for _, h in ipairs(t:perform(1)) do
      local it = active[h]
      if it then
        active[h], nactive = nil, nactive - 1
        local v, meta = h:result()
        if v ~= nil then
          client.sender:observe(meta)
          local cok, cerr = it.dest.commit()
          if cok then results[it.index] = result_of(it.state, it.dest, meta) else errs[it.index] = cerr end
        else
          it.dest.abort()
          local curable = type(meta) == "table" and (meta.kind == "auth" or retry.retryable(it.req.method, meta))
          if curable and it.state.bytes == 0 then
            again[#again + 1] = it
          else
            if type(meta) == "table" then meta.report_id = meta.report_id or it.id end
            errs[it.index] = client.sender:finish(meta)
          end
        end
      end
    end
    ok, err = pcall(start_next)
  end
  if not ok then
    -- a raise (misuse, a user hook): nothing is left half written
    for h, it in pairs(active) do
      it.dest.abort()
      pcall(h.close, h)
    end
    error(err, 0)
  end
  for _, it in ipairs(again) do
    results[it.index], errs[it.index] = export_checked(client, it.id, it.opts)
  end
end

-- client:export_many(list, opts): see the top of this file.
function M.export_many(client, list, opts)
  if type(list) ~= "table" then error("sfreports: export_many expects a list of { id =, to = }", 3) end
  opts = options.check(opts, options.EXPORT, "export_many", 2, options.EXPORT_MANY)
  local limit = opts.concurrency or 1
  local defaults = {}
  for k, v in pairs(opts) do
    if k ~= "concurrency" then defaults[k] = v end
  end
  local items = {}
  for i, entry in ipairs(list) do
    local o = entry_options(entry, defaults, i)
    items[i] = { index = i, id = o.id, opts = o }
  end
  local results, errs = {}, {}
  if limit <= 1 then
    for i, it in ipairs(items) do results[i], errs[i] = export_checked(client, it.id, it.opts) end
    return results, errs
  end
  local valid = {}
  for _, it in ipairs(items) do
    local ok, why = ids.check(it.id, "report id")
    if ok then valid[#valid + 1] = it else errs[it.index] = errors.invalid(why, { report_id = it.id }) end
  end
  export_concurrently(client, valid, limit, results, errs)
  return results, errs
end

return M
