-- sfreports.serve: serve report data from nginx at any request rate. A content handler
-- answers from a lua_shared_dict entry (the encoded body, its ETag, content type,
-- all_data and run time) shared by every worker; the report runs once per refresh, not
-- once per visitor.
--
--   lua_shared_dict sfreports 64m;
--   location ~ ^/cached/reports/(?<report_id>\w+)\.csv$ {
--     content_by_lua_block { require("sfreports.serve").report(ngx.var.report_id, { max_age = 300 }) }
--   }
--
-- serve.report(id, opts). opts (misuse raises, naming the option):
--   dict = "sfreports"   the lua_shared_dict (declared in nginx.conf)
--   max_age = 300        seconds an entry is fresh
--   stale = 3600         seconds after max_age a stale entry is still served (while one
--                        background refresh runs, or when Salesforce fails)
--   format = "csv"       "csv" | "tsv" | "json" | "jsonl" | "xlsx"
--   raw = false          the writers' raw mode (values instead of labels)
--   run = {...}          run options (filters, columns, details...): data only
--   allow = { param = function(value) -> run option changes | nil, why }: the query
--                        parameters a visitor may set; every other parameter is ignored
--                        (and does not make a new cache key). A function's changes are
--                        merged over `run` (key `raw` sets the writers' raw mode); nil,
--                        why answers 400 with why.
--   async = false        run asynchronously (run_async with reuse = max_age, then wait)
--   client = nil         a client, or sfreports.new options (what they leave out comes from
--                        the environment: sfreports.from_env(options)); default
--                        sfreports.from_env(): SF_INSTANCE_URL, SF_ACCESS_TOKEN, passed to
--                        the workers with nginx's `env` directive. A client is made per run.
--   wait = 30            seconds a request for a missing entry waits for the one run
--                        already going, before 503 with Retry-After
--   timeout = 150        seconds a run may take (sync run, or async wait)
--   lock_ttl = timeout + 30   seconds a refresh lock lives: a refresher that died
--                        (worker killed) stops blocking refreshes after that
--
-- Answers: fresh entry 200 (X-Cache: HIT), If-None-Match with its ETag 304; stale entry
-- 200 at once (X-Cache: STALE) and exactly one background refresh (ngx.timer.at) across
-- all workers, guarded by a lock in the dict (`add` with expiry); no entry: one request
-- runs the report (X-Cache: MISS), the others wait for it. Every 200 carries ETag,
-- Last-Modified (the run), X-Report-Truncated: true|false (allData). A body larger than
-- the dict can hold is served whole without caching (X-Cache: BYPASS) with a warning in
-- the error log; never truncated. A failed refresh leaves the stale entry (served, error
-- logged) and retries after min(max_age, 30) s; a failed run without any copy is a 502
-- with a short JSON error (kind and code only: never a secret or a stack trace).
--
-- serve.schedule{ reports = { { id, <serve opts> }, ... }, every = seconds } in
-- init_worker_by_lua: one worker (lock) refreshes each listed report every `every`
-- seconds (default: its max_age / 2), so that visitors never wait.
-- serve.key(id, opts[, args]) -> the dict key; serve.purge(id, opts) drops an entry.
local options = require "sfreports.options"
local reuse = require "sfreports.reuse"
local entry = require "sfreports.serve_entry"

local type, pairs, ipairs, tostring, tonumber, pcall, error, getmetatable, rawget =
  type, pairs, ipairs, tostring, tonumber, pcall, error, getmetatable, rawget
local format, concat, min, max, ceil = string.format, table.concat, math.min, math.max, math.ceil

local M = {}

M.DEFAULTS = { dict = "sfreports", max_age = 300, stale = 3600, format = "csv", wait = 30, timeout = 150 }
M.FAILED_BACKOFF = 30      -- seconds before a failed refresh is tried again (at most max_age)
M.ERROR_TTL = 2            -- seconds a failed run's error is shown to the requests that waited

local CONTENT_TYPES = {
  csv = "text/csv; charset=utf-8", tsv = "text/tab-separated-values; charset=utf-8",
  json = "application/json", jsonl = "application/x-ndjson",
  xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
M.CONTENT_TYPES = CONTENT_TYPES

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or not ngx.shared then error("sfreports.serve runs inside nginx (OpenResty)", 3) end
  return ngx
end

-- The checked options with defaults, and the dict. Raises on misuse.
local function settings(opts, where)
  opts = options.check(opts, options.SERVE, where, 3)
  local s = {}
  for k, v in pairs(M.DEFAULTS) do s[k] = v end
  for k, v in pairs(opts) do s[k] = v end
  if not CONTENT_TYPES[s.format] then
    error(format("sfreports: option 'format' for %s must be csv, tsv, json, jsonl or xlsx, got %s",
      where, tostring(s.format)), 3)
  end
  for name, fn in pairs(s.allow or {}) do
    if type(name) ~= "string" or type(fn) ~= "function" then
      error(format("sfreports: option 'allow' for %s maps query parameter names to functions", where), 3)
    end
  end
  s.lock_ttl = s.lock_ttl or s.timeout + 30
  local ngx = ngx_api()
  s.shm = ngx.shared[s.dict]
  if not s.shm then
    error(format("sfreports: option 'dict' for %s: lua_shared_dict %s is not declared in nginx.conf", where,
      s.dict), 3)
  end
  return s
end

-- The run options (opts.run with the allowed query parameters over it) and raw mode; or
-- nil, why for a value an allow function refused.
local function resolve(s, args)
  local run = {}
  for k, v in pairs(s.run or {}) do run[k] = v end
  local raw = s.raw == true
  if s.allow and args then
    local names = {}
    for name in pairs(s.allow) do names[#names + 1] = name end
    table.sort(names) -- the same order in every worker
    for _, name in ipairs(names) do
      local v = args[name]
      if type(v) == "table" then v = v[#v] end -- a repeated parameter: the last one
      if v ~= nil and v ~= true then
        local changes, why = s.allow[name](v)
        if changes == nil then return nil, why or ("query parameter " .. name .. " has a value not allowed") end
        for k, cv in pairs(changes) do
          if k == "raw" then raw = cv == true else run[k] = cv end
        end
      end
    end
  end
  return run, raw
end

local function key_of(ngx, id, s, run, raw)
  local text = reuse.canonical(run) .. (raw and "|raw" or "") .. (s.async and "|async" or "")
  return format("sfr:%s:%s:%s", id, s.format, ngx.md5(text))
end

---------------------------------------------------------------------------
-- running a report into a body

local function new_client(s)
  local sfreports = require "sfreports"
  local c = s.client
  if type(c) == "table" and getmetatable(c) ~= nil and type(c.run_sync) == "function" then return c, false end
  if type(c) == "table" then
    local o = {}
    for k, v in pairs(c) do o[k] = v end
    local client, err = sfreports.from_env(o) -- the environment fills what o leaves out
    return client, err, true
  end
  local client, err = sfreports.from_env()
  return client, err, true
end

local function encode(report, fmt, raw)
  local parts, n = {}, 0
  local sink = function(chunk)
    n = n + 1
    parts[n] = chunk
    return true
  end
  local ok, err
  if fmt == "xlsx" then
    ok, err = require("sfreports.writers").xlsx(report, sink, { raw = raw })
  else
    ok, err = require("sfreports.writers").write(fmt, report, sink, { raw = raw })
  end
  if not ok then return nil, err end
  return concat(parts)
end

-- Runs the report and encodes it: body, all_data | nil, err.
local function produce(s, id, run, raw)
  local client, cerr, owned = new_client(s)
  if not client then return nil, cerr end
  local report, err
  if s.async then
    local o = { reuse = s.max_age }
    for k, v in pairs(run) do o[k] = v end
    local inst
    inst, err = client:run_async(id, o)
    if inst then report, err = inst:wait({ timeout = s.timeout }) end
  else
    local o = { timeout = s.timeout }
    for k, v in pairs(run) do o[k] = v end
    report, err = client:run_sync(id, o)
  end
  if owned then client:close() end
  if not report then return nil, err end
  local body, eerr = encode(report, s.format, raw)
  if not body then return nil, eerr end
  return body, report.all_data == true
end

-- Runs, encodes and stores. Returns the entry (stored, or with .bypass when the dict
-- could not hold it), or nil, err.
local function refresh(ngx, s, key, id, run, raw)
  local ok, body, all_data = pcall(produce, s, id, run, raw)
  if not ok then
    ngx.log(ngx.ERR, "sfreports.serve: report ", id, ": ", tostring(body))
    return nil, { kind = "internal", message = "the report could not be encoded" }
  end
  if not body then return nil, all_data end
  local e = entry.new(ngx, body, CONTENT_TYPES[s.format], all_data)
  local stored, why = entry.store(s.shm, key, e, s.max_age + s.stale)
  if not stored then
    ngx.log(ngx.WARN, format("sfreports.serve: the body of report %s (%d bytes, %s) does not fit in "
      .. "lua_shared_dict %s (%s): served without caching; enlarge the dict", id, #body, s.format, s.dict,
      tostring(why)))
    e.bypass = true
    s.shm:set("big:" .. key, true, s.max_age)
  end
  return e
end

---------------------------------------------------------------------------
-- answering

local function send(ngx, e, cache_state, status)
  ngx.header["Content-Type"] = e.ctype
  ngx.header["ETag"] = e.etag
  ngx.header["Last-Modified"] = ngx.http_time(e.stored)
  ngx.header["X-Report-Truncated"] = e.all_data and "false" or "true"
  ngx.header["X-Cache"] = cache_state
  ngx.header["Age"] = tostring(math.floor(max(0, ngx.now() - e.stored)))
  local inm = ngx.var.http_if_none_match
  if status == nil and inm and (inm == "*" or inm:find(e.etag, 1, true)) then
    return ngx.exit(304)
  end
  ngx.status = status or 200
  ngx.header["Content-Length"] = #e.body
  ngx.print(e.body)
  return ngx.exit(ngx.status)
end

local function fail_json(ngx, status, kind, message, code, retry_after)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  if retry_after then ngx.header["Retry-After"] = tostring(retry_after) end
  local json = require "sfreports.json"
  ngx.say(json.encode({ error = kind, message = message, code = code }))
  return ngx.exit(status)
end

-- 502 for a run that failed: the kind and code of the error, a fixed sentence.
local function upstream_failed(ngx, err)
  local kind = type(err) == "table" and err.kind or "internal"
  local code = type(err) == "table" and type(err.code) == "string" and err.code or nil
  return fail_json(ngx, 502, tostring(kind), "the report could not be run", code)
end

local function log_failure(ngx, id, err, what)
  local msg = type(err) == "table" and (tostring(err.kind) .. ": " .. tostring(err.message)) or tostring(err)
  ngx.log(ngx.ERR, "sfreports.serve: ", what, " of report ", id, " failed: ", msg)
end

-- The background refresh of a stale entry (ngx.timer.at): holds the lock taken by the
-- request that found the entry stale; releases it, or keeps it for the back-off after a
-- failure so that a failing org is not asked on every request.
local function background(premature, s, key, id, run, raw)
  local ngx = ngx_api()
  if premature then return s.shm:delete("l:" .. key) end
  local ok, e, err = pcall(refresh, ngx, s, key, id, run, raw)
  if ok and e then return s.shm:delete("l:" .. key) end
  log_failure(ngx, id, ok and err or e, "the background refresh")
  s.shm:set("l:" .. key, "failed", min(s.max_age, M.FAILED_BACKOFF))
end

local function start_refresh(ngx, s, key, id, run, raw)
  if not s.shm:add("l:" .. key, ngx.worker.pid(), s.lock_ttl) then return false end
  local ok, err = ngx.timer.at(0, background, s, key, id, run, raw)
  if not ok then
    s.shm:delete("l:" .. key)
    ngx.log(ngx.ERR, "sfreports.serve: cannot start a refresh timer: ", tostring(err))
  end
  return ok
end

-- The request that holds the lock of a missing entry runs the report.
local function run_now(ngx, s, key, id, run, raw)
  local ok, e, err = pcall(refresh, ngx, s, key, id, run, raw)
  if ok and e then
    s.shm:delete("l:" .. key)
    return send(ngx, e, e.bypass and "BYPASS" or "MISS")
  end
  err = ok and err or e
  log_failure(ngx, id, err, "the run")
  s.shm:set("err:" .. key, type(err) == "table" and tostring(err.kind) or "internal", M.ERROR_TTL)
  s.shm:delete("l:" .. key)
  return upstream_failed(ngx, err)
end

-- Bounded wait for the run another request (or worker) is making; takes the lock itself
-- when the holder went away (lock expired or released without an entry).
local function wait_for(ngx, s, key, id, run, raw)
  ngx.update_time()
  local deadline = ngx.now() + s.wait
  local step = 0.02
  while true do
    local e = entry.get(s.shm, key)
    if e then return send(ngx, e, "HIT") end
    local failed = s.shm:get("err:" .. key)
    if failed then return fail_json(ngx, 502, failed, "the report could not be run") end
    if s.shm:add("l:" .. key, ngx.worker.pid(), s.lock_ttl) then return run_now(ngx, s, key, id, run, raw) end
    ngx.update_time() -- ngx.now() is the event loop's cached time
    local left = deadline - ngx.now()
    if left < 0.001 then break end -- timers have millisecond resolution: never sleep(0)
    ngx.sleep(max(0.001, min(step, left)))
    step = min(step * 1.5, 0.5)
  end
  local ttl = s.shm.ttl and s.shm:ttl("l:" .. key)
  return fail_json(ngx, 503, "busy", "the report is being run; try again shortly", nil,
    max(1, ceil(tonumber(ttl) or 5)))
end

-- The content handler (see the top of this file).
function M.report(id, opts)
  local ngx = ngx_api()
  local s = settings(opts, "serve.report")
  if type(id) ~= "string" or not require("sfreports.ids").check(id) then
    return fail_json(ngx, 400, "invalid", "not a report id")
  end
  local run, raw = resolve(s, s.allow and ngx.req.get_uri_args() or nil)
  if not run then return fail_json(ngx, 400, "invalid", raw) end
  local key = key_of(ngx, id, s, run, raw)
  local e = entry.get(s.shm, key)
  if e then
    if ngx.now() - e.stored <= s.max_age then return send(ngx, e, "HIT") end
    start_refresh(ngx, s, key, id, run, raw)
    return send(ngx, e, "STALE")
  end
  if s.shm:get("big:" .. key) then
    -- known not to fit: every request runs it (logged at each run)
    local b, err = refresh(ngx, s, key, id, run, raw)
    if not b then
      log_failure(ngx, id, err, "the run")
      return upstream_failed(ngx, err)
    end
    return send(ngx, b, "BYPASS")
  end
  if s.shm:add("l:" .. key, ngx.worker.pid(), s.lock_ttl) then return run_now(ngx, s, key, id, run, raw) end
  return wait_for(ngx, s, key, id, run, raw)
end

-- The dict key of a report served with opts (args: query arguments, as a visitor's).
function M.key(id, opts, args)
  local ngx = ngx_api()
  local s = settings(opts, "serve.key")
  local run, raw = resolve(s, args)
  if not run then return nil, raw end
  return key_of(ngx, id, s, run, raw)
end

-- Drops the entry of a report (the next request runs it). Returns true.
function M.purge(id, opts, args)
  local key = M.key(id, opts, args)
  local s = settings(opts, "serve.purge")
  entry.drop(s.shm, key)
  return true
end

---------------------------------------------------------------------------
-- warm-up

local function warm(premature, list, every)
  if premature then return end
  local ngx = ngx_api()
  for _, item in ipairs(list) do
    local s, id = item.s, item.id
    local run, raw = resolve(s, nil)
    local key = key_of(ngx, id, s, run, raw)
    local e = entry.get(s.shm, key)
    local due = not e or ngx.now() - e.stored >= s.max_age - (item.every or every) - 1
    if due and s.shm:add("l:" .. key, ngx.worker.pid(), s.lock_ttl) then
      background(false, s, key, id, run, raw)
    end
  end
end

-- serve.schedule{ reports = { { "00O...", max_age = 300, ... }, ... }, every = seconds }:
-- call in init_worker_by_lua. Every worker sets the timer; each round, the refresh lock
-- of each report lets only one worker run it. Returns true | nil, err.
function M.schedule(opts)
  local ngx = ngx_api()
  if type(opts) ~= "table" or type(opts.reports) ~= "table" then
    error("sfreports: serve.schedule expects { reports = { { id, <serve options> }, ... }, every = seconds }", 2)
  end
  local list, smallest = {}, math.huge
  for i, r in ipairs(opts.reports) do
    if type(r) ~= "table" or type(r[1]) ~= "string" then
      error("sfreports: serve.schedule: reports[" .. i .. "] must be { id, <serve options> }", 2)
    end
    local o = {}
    for k, v in pairs(r) do if k ~= 1 then o[k] = v end end
    local s = settings(o, "serve.schedule")
    list[i] = { id = r[1], s = s }
    smallest = min(smallest, s.max_age)
  end
  local every = tonumber(opts.every) or max(1, smallest / 2)
  if every <= 0 or every ~= every or every == math.huge then
    error("sfreports: serve.schedule: every must be a finite number > 0", 2)
  end
  local ok, err = ngx.timer.every(every, warm, list, every)
  if not ok then return nil, err end
  ngx.timer.at(0, warm, list, every)
  return true
end

M.entry = entry
return M
