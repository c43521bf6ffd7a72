-- spec/support/engines_probe.lua: handlers for the nginx that spec/engines_spec.lua
-- starts. The hostile ones (/h/...) misbehave like a broken or malicious server, for both
-- engines; the probe ones (/p/...) run the cosocket transport inside nginx and answer
-- with what happened as JSON, so the spec (outside nginx) can compare it with the
-- libcurl engine.
local transport_ngx = require "sfreports.transport_ngx"
local cjson = require "cjson.safe"
local probe_http = require "probe_http"

local ngx = ngx -- luacheck: ignore 113 (nginx's global, this module runs only there)

local M = {}

local reply, query, bare = probe_http.reply, probe_http.query, probe_http.bare
M.bare = bare

local function err_fields(err)
  if type(err) ~= "table" then return nil end
  return { kind = err.kind, message = err.message, status = err.status, code = err.code,
    retryable = err.retryable, excerpt = err.excerpt, text = tostring(err) }
end

local rows_of = probe_http.rows_of

local function result_fields(value, second)
  if value == nil then return { ok = false, err = err_fields(second) } end
  local attrs = type(value) == "table" and value.attributes or nil
  return { ok = true, rows = rows_of(value), id = type(value) == "table" and value.id or nil,
    status = type(attrs) == "table" and attrs.status or nil, http = second and second.status }
end

---------------------------------------------------------------------------
-- hostile answers

-- A JSON error whose message and code hold control characters (CR, LF, ESC, NUL, DEL)
-- and are far longer than any error should be.
function M.noisy()
  ngx.status = 400
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode({ {
    errorCode = "BAD\r\nCODE\27[2J" .. string.rep("c", 1000),
    message = "first\r\nsecond\27[2J\0third\127" .. string.rep("m", 5000),
  } }))
end

-- An HTML error page with control characters.
function M.noisy_html()
  ngx.status = 500
  ngx.header["Content-Type"] = "text/html"
  ngx.print("<html><body>oops\27[2J\127 clear" .. string.rep(" filler", 200) .. "</body></html>")
end

-- A header block of about 300 KB (30 headers of 10 KB): over the engines' 256 KB cap.
function M.big_headers()
  for i = 1, 30 do ngx.header["X-Pad-" .. i] = string.rep("a", 10000) end
  ngx.header["Content-Type"] = "application/json"
  ngx.print("{}")
end

-- One header line of 150 KB: over libcurl's own limit for a line (100 KB).
function M.big_line()
  ngx.header["X-Big"] = string.rep("b", 150000)
  ngx.header["Content-Type"] = "application/json"
  ngx.print("{}")
end

-- A JSON answer that trickles out a byte every 0.1 s for 3 s: never stalled, but slow.
function M.drip()
  ngx.header["Content-Type"] = "application/json"
  ngx.print("[")
  ngx.flush(true)
  for _ = 1, 30 do
    ngx.sleep(0.1)
    ngx.print(" ")
    local ok = ngx.flush(true)
    if not ok then return end
  end
  ngx.print("]")
end

---------------------------------------------------------------------------
-- probes of the cosocket transport

-- The values every numeric option is tried with; none may be accepted.
M.BAD_NUMBERS = { "nan", "inf", "-inf", "huge", "negative" }
M.NUMERIC_OPTIONS = { "timeout", "connect_timeout", "stall_timeout", "max_response" }

function M.bad_number(name)
  if name == "nan" then return 0 / 0 end
  if name == "inf" then return math.huge end
  if name == "-inf" then return -math.huge end
  if name == "huge" then return 1e300 end
  return -1
end

-- POST /p/options {base_url}: the error transport_ngx.new raises for each bad option.
function M.options()
  local q = query()
  local out = {}
  for _, opt in ipairs(M.NUMERIC_OPTIONS) do
    for _, bad in ipairs(M.BAD_NUMBERS) do
      local ok, err = pcall(transport_ngx.new, { base_url = q.base_url, [opt] = M.bad_number(bad) })
      out[opt .. "=" .. bad] = ok and "no error" or bare(err)
    end
  end
  local ok, err = pcall(transport_ngx.new, { base_url = q.base_url, user_agent = "ua\r\nX-Injected: 1" })
  out.user_agent = ok and "no error" or bare(err)
  return reply(out)
end

-- POST /p/requests {base_url, token, requests = [{method, path, body, ropts}]}: each
-- request's result on one transport.
function M.requests()
  local q = query()
  local t = assert(transport_ngx.new({ base_url = q.base_url, token = q.token }))
  local out = {}
  for i, r in ipairs(q.requests) do
    out[i] = result_fields(t:request(r.method or "GET", r.path, r.body, nil, r.ropts))
  end
  return reply({ results = out, stats = t:stats() })
end

-- Waits for the handle h of transport t; returns its result.
local function await(t, h)
  for _ = 1, 200 do
    if h:done() then break end
    t:perform(1)
  end
  return h:result()
end

-- POST /p/runs {base_url, token, report, details}: run_sync, run_async and
-- fetch_instance, each blocking and with ropts.start.
function M.runs()
  local q = query()
  local t = assert(transport_ngx.new({ base_url = q.base_url, token = q.token }))
  local out = {}
  out.sync = result_fields(t:run_sync(q.report))
  out.sync_summary = result_fields(t:run_sync(q.report, nil, false))
  local h = t:run_sync(q.report, nil, true, { start = true })
  out.sync_started = getmetatable(h) == transport_ngx.Handle
  out.sync_start = result_fields(await(t, h))
  out.bad_id = result_fields(t:run_sync("00O/../../x"))
  local bad_h = t:run_sync("00O/../../x", nil, nil, { start = true })
  out.bad_id_start = result_fields(await(t, bad_h))
  local inst = t:run_async(q.report, nil, true, { start = true })
  local iv, imeta = await(t, inst)
  out.async = result_fields(iv, imeta)
  local iid = type(iv) == "table" and iv.id
  if iid then
    for _ = 1, 50 do
      local fh = t:fetch_instance(q.report, iid, { start = true })
      local fv, fm = await(t, fh)
      out.fetch = result_fields(fv, fm)
      if out.fetch.status == "Success" then break end
      ngx.sleep(0.1)
    end
    out.fetch_blocking = result_fields(t:fetch_instance(q.report, iid))
  end
  out.stats = t:stats()
  return reply(out)
end

return M
