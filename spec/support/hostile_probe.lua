-- spec/support/hostile_probe.lua: the handler that spec/hostile_spec.lua runs inside a
-- real nginx, so that the cosocket engine meets the hostile server (spec/support/hostile.lua)
-- exactly as the libcurl engine does outside nginx.
--   POST /run {transport = {...} | client = {...}, calls = [{op, args}]}
-- transport: options of sfreports.transport_ngx.new; op "request" calls request(args...).
-- client: options of sfreports.new; op is a client method (run_sync, describe...).
-- Answers [{ok, raised, err, value_type, complete}] plus the worker's memory (VmRSS,
-- VmHWM in kB) before and after; with reset_peak = true, VmHWM is reset first (Linux
-- clear_refs), so after.hwm - before.rss is what these calls added at their peak.
local sfreports = require "sfreports"
local transport_ngx = require "sfreports.transport_ngx"
local cjson = require "cjson.safe"
local probe_http = require "probe_http"

local ngx = ngx -- luacheck: ignore 113 (nginx's global: this file runs only there)

local M = {}

local function memory()
  local f = io.open("/proc/self/status", "r")
  if not f then return {} end
  local s = f:read("*a")
  f:close()
  return { rss = tonumber(s:match("VmRSS:%s*(%d+)")), hwm = tonumber(s:match("VmHWM:%s*(%d+)")) }
end

local function err_fields(err)
  if type(err) ~= "table" then return nil end
  return { kind = err.kind, message = err.message, status = err.status, code = err.code,
    retryable = err.retryable, request_sent = err.request_sent, excerpt = err.excerpt }
end

-- Runs one call; JSON null arguments (holes in args) become nil.
local function one(target, call)
  local args, n = {}, 0
  for i, v in ipairs(call.args or {}) do
    if v ~= cjson.null then args[i] = v end
    n = i
  end
  local fn = target[call.op]
  local ok, value, second = pcall(fn, target, (table.unpack or unpack)(args, 1, n))
  if not ok then return { ok = false, raised = tostring(value) } end
  local out = { ok = value ~= nil, value_type = type(value) }
  if value == nil then
    out.err = err_fields(second)
  elseif type(value) == "table" then
    out.complete = value.all_data
  end
  return out
end

local function reset_peak()
  local f = io.open("/proc/self/clear_refs", "w")
  if f then
    f:write("5")
    f:close()
  end
end

function M.run()
  local q = probe_http.query()
  collectgarbage()
  if q.reset_peak then reset_peak() end
  local before = memory()
  local target, err
  if q.client then
    target, err = sfreports.new(q.client)
  else
    target, err = transport_ngx.new(q.transport)
  end
  local results = {}
  if target then
    for i, call in ipairs(q.calls) do results[i] = one(target, call) end
    target:close()
  end
  collectgarbage()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode({ results = results, new_err = err_fields(err), before = before, after = memory() }))
end

return M
