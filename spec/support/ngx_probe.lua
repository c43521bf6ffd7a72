-- spec/support/ngx_probe.lua: test-only handlers loaded by the nginx that
-- spec/openresty_spec.lua starts (next to the example handlers). They run sfreports
-- inside nginx phases and answer with what happened as JSON, so the spec (outside
-- nginx) can compare it with the libcurl engine.
local sfreports = require "sfreports"
local transport_ngx = require "sfreports.transport_ngx"
local cjson = require "cjson.safe"
local probe_http = require "probe_http"

local ngx = ngx -- luacheck: ignore 113 (nginx's global, this module runs only there)

local M = {}

-- Results of the init / init_worker phase probes (filled by the config's init blocks).
M.init = {}

local function err_fields(err)
  if not err then return nil end
  return { kind = err.kind, message = err.message, status = err.status, code = err.code,
    retryable = err.retryable, retry_after = err.retry_after, request_sent = err.request_sent }
end
M.err_fields = err_fields

local reply, rows_of = probe_http.reply, probe_http.rows_of

-- (value, meta) or (nil, err), as transports return them, to JSON-able fields.
local function one_result(value, second)
  local meta, err
  if value == nil then err = second else meta = second end
  return {
    ok = value ~= nil, err = err_fields(err), rows = rows_of(value),
    value = type(value) ~= "table" and value or nil,
    echo = type(value) == "table" and value.echo or nil,
    status = meta and meta.status, headers = meta and meta.headers,
  }
end

-- POST /probe {base_url, token, opts, requests = [{method, path, body, raw}]}: runs the
-- requests one after another on one transport; answers with each result and stats.
function M.probe()
  local q = probe_http.query()
  local opts = { base_url = q.base_url, token = q.token }
  for k, v in pairs(q.opts or {}) do opts[k] = v end
  local t, terr = transport_ngx.new(opts)
  if not t then return reply({ new_err = err_fields(terr) }) end
  local out = {}
  for i, r in ipairs(q.requests) do
    out[i] = one_result(t:request(r.method or "GET", r.path, r.body, nil, r.raw))
  end
  return reply({ results = out, stats = t:stats() })
end

-- The misuse cases of spec/openresty_spec.lua: each raises (a bug in the caller).
M.MISUSE = {
  { "GET", "/a/../b" }, { "GET", "/a/./b" }, { "GET", "/a%2Fb" }, { "GET", "/a\\b" },
  { "GET", "/a b" }, { "GET", "/a#b" }, { "GET", "no-slash" }, { "BREW", "/x" },
  { "GET", "/x", nil, { ["X-A"] = "a\r\nb: c" } }, { "GET", "/x", nil, { ["X-A\n"] = "a" } },
  { "GET", "/x", nil, { ["X-A"] = {} } },
}

-- The message of an error, without the position prefix Lua adds.
M.bare = probe_http.bare

-- GET /misuse: the error each misuse raises on the cosocket transport.
function M.misuse()
  local t = transport_ngx.new({ base_url = "http://127.0.0.1:1", token = "tok" })
  local out = {}
  for i, c in ipairs(M.MISUSE) do
    local ok, err = pcall(t.request, t, c[1], c[2], c[3], c[4])
    out[i] = ok and "no error" or M.bare(err)
  end
  out[#out + 1] = M.bare(select(2, pcall(t.set_token, t, "a\nb")))
  return reply({ errors = out, requests = t:stats().requests })
end

-- GET /many?n=&path=: n requests at once with start/perform in one nginx request.
function M.many()
  local args = ngx.req.get_uri_args()
  local n = tonumber(args.n)
  local client = assert(sfreports.from_env())
  local t = client.transport
  local t0 = ngx.now()
  local handles = {}
  for i = 1, n do handles[i] = t:start("GET", args.path) end
  local pending_after_start = t:pending()
  local done, rounds = {}, 0
  while #done < n do
    rounds = rounds + 1
    for _, h in ipairs(t:perform(5)) do done[#done + 1] = h end
    if rounds > 1000 then break end
  end
  ngx.update_time()
  local results = {}
  for i, h in ipairs(handles) do results[i] = one_result(h:result()) end
  return reply({ elapsed = ngx.now() - t0, results = results, pending_after_start = pending_after_start,
    pending_end = t:pending(), finished = #done, stats = t:stats() })
end

-- GET /echo: the request headers as JSON (the transport's own requests land here).
function M.echo()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode({ echo = ngx.req.get_headers() }))
end

-- GET /init: what the init and init_worker probes saw, and a request in this content
-- phase through the client that init_by_lua created.
function M.init_report()
  local c = M.init.client
  local list, err = c:list_reports()
  if list ~= nil then err = nil end -- the second value is meta on success
  return reply({
    init = M.init.result, worker = M.init.worker,
    transport = getmetatable(c.transport) == transport_ngx.Transport and "ngx" or "other",
    content = one_result(list, err), count = type(list) == "table" and #list or nil,
  })
end

-- An error message for a phase probe: "kind: message", or "no error".
function M.describe(value, err)
  if value == nil and err then return err.kind .. ": " .. err.message end
  return value ~= nil and "no error" or "no value"
end

return M
