-- spec/support/ngx_export_probe.lua: a test-only handler for spec/export_ngx_spec.lua:
-- GET /export?id=ID runs client:export inside nginx (cosockets) into a function sink
-- that keeps nothing, and answers with what happened as JSON: bytes, chunks, the
-- largest chunk, the Lua heap's growth at its peak during the transfer, the worker's
-- resident memory before and at its peak (VmHWM), the error's fields.
local sfreports = require "sfreports"
local cjson = require "cjson.safe"

local ngx = ngx -- luacheck: ignore 113 (nginx's global, this module runs only there)

local M = {}

local function status_kb(field)
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

function M.export()
  local args = ngx.req.get_uri_args()
  local client = assert(sfreports.from_env({ stall_timeout = tonumber(args.stall) }))
  collectgarbage("collect")
  local base_heap, rss_before = collectgarbage("count"), status_kb("VmRSS")
  local peak, chunks, biggest, filename = 0, 0, 0, nil
  local info, err = client:export(args.id, {
    on_start = function(i) filename = i.filename end,
    to = function(s)
      chunks = chunks + 1
      if #s > biggest then biggest = #s end
      local heap = collectgarbage("count")
      if heap > peak then peak = heap end
    end,
  })
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode({
    ok = info ~= nil, bytes = info and info.bytes, filename = filename, engine = client.engine,
    chunks = chunks, biggest = biggest, heap_growth_kb = peak - base_heap,
    rss_before_kb = rss_before, hwm_kb = status_kb("VmHWM"),
    err = err and { kind = err.kind, message = err.message, status = err.status, retryable = err.retryable,
      streamed = err.streamed } or nil,
  }))
end

return M
