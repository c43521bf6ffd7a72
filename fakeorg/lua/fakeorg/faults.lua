-- fakeorg.faults: injected failures (POST /__fake/fault) served instead of the real
-- response of the next matching API requests.
local util = require "fakeorg.util"
local out = require "fakeorg.out"
local xlsx = require "fakeorg.xlsx"

local ngx = ngx
local rep = string.rep

local faults = {}

local HTML_502 = [[<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><h1>Bad Gateway</h1>
<p>The server encountered a temporary error and could not complete your request.</p></body></html>
]]

local BROKEN_JSON = '{"attributes":{"type":"Report","reportId":"00OFk00000A0001MAB"},"allData":tru'

local PARTIAL = '{"attributes":{"type":"Report"},"factMap":{"T!T":{"aggregates":[{"label":"1","value":1}],"rows":['

local function headers_json(status)
  ngx.status = status
  ngx.header["Content-Type"] = out.JSON
end

-- A gzip stream with one stored deflate block announcing more data than is sent.
local function truncated_gzip()
  local payload = util.encode({ attributes = { type = "Report" }, allData = true, note = rep("x", 2000) })
  local len = #payload
  local nlen = 65535 - len
  local header = "\31\139\8\0\0\0\0\0\0\255"
  local block = string.char(1, len % 256, math.floor(len / 256), nlen % 256, math.floor(nlen / 256))
  return header .. block .. payload:sub(1, math.floor(len / 2))
end

local HANDLERS = {}

function HANDLERS.html502()
  return out.send(502, HTML_502, "text/html; charset=UTF-8")
end

function HANDLERS.invalid_json()
  return out.send(200, BROKEN_JSON)
end

function HANDLERS.empty200()
  return out.send(200, "")
end

-- 200 with `body`, the JSON text given to the fault, as it is (bad shapes: null, [], ...).
function HANDLERS.body(def)
  return out.send(200, def.body)
end

function HANDLERS.retry_after()
  ngx.header["Retry-After"] = "1"
  return out.error(503, "SERVER_UNAVAILABLE",
    "The server is temporarily unable to handle the request. Try again later.")
end

function HANDLERS.limit()
  return out.error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
end

-- 404 NOT_FOUND, as for an instance that expired (24 hours) or was deleted between the
-- instance list and the fetch of its results.
function HANDLERS.not_found()
  return out.not_found()
end

function HANDLERS.server_error()
  return out.error(500, "UNKNOWN_EXCEPTION",
    "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)")
end

-- Part of a body, then the connection is closed (no terminating chunk). A request for
-- an xlsx gets `bytes` (default 300,000) of a large workbook first.
function HANDLERS.reset(def)
  if xlsx.wanted() then return xlsx.serve_sized(4 * 1024 * 1024, { after = tonumber(def.bytes) or 300000 }) end
  headers_json(200)
  ngx.print(PARTIAL)
  ngx.flush(true)
  return ngx.exit(444)
end

function HANDLERS.truncated_gzip()
  ngx.ctx.fakeorg_own_encoding = true
  local body = truncated_gzip()
  ngx.status = 200
  ngx.header["Content-Type"] = out.JSON
  ngx.header["Content-Encoding"] = "gzip"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(200)
end

-- Headers and a few bytes, then nothing for `seconds` (default 60).
function HANDLERS.stall(def)
  if xlsx.wanted() then
    return xlsx.serve_sized(4 * 1024 * 1024, { after = tonumber(def.bytes) or 300000,
      seconds = tonumber(def.seconds) or 60 })
  end
  headers_json(200)
  ngx.print(PARTIAL)
  ngx.flush(true)
  ngx.sleep(tonumber(def.seconds) or 60)
  return ngx.exit(444)
end

-- A valid JSON report result of about `bytes` (default 50 MB), streamed.
function HANDLERS.huge(def)
  local target = tonumber(def.bytes) or 50 * 1024 * 1024
  if xlsx.wanted() then return xlsx.serve_sized(target) end
  headers_json(200)
  local w = out.writer()
  w.put('{"attributes":{"type":"Report","reportName":"Huge"},"allData":true,"hasDetailRows":true,'
    .. '"groupingsDown":{"groupings":[]},"groupingsAcross":{"groupings":[]},'
    .. '"reportMetadata":{"reportFormat":"TABULAR","detailColumns":["DESCRIPTION"],"aggregates":["RowCount"]},'
    .. '"factMap":{"T!T":{"aggregates":[{"label":"0","value":0}],"rows":[')
  local row = '{"dataCells":[{"label":"' .. rep("y", 1000) .. '","value":"' .. rep("y", 1000) .. '"}]}'
  local sent, first = 0, true
  while sent < target do
    w.put(first and row or "," .. row)
    first = false
    sent = sent + #row + 1
  end
  w.put("]}}}")
  w.flush()
  return ngx.exit(200)
end

faults.KINDS = {}
for kind in pairs(HANDLERS) do faults.KINDS[kind] = true end

-- Serves a pending fault for this request, if any (does not return then).
function faults.serve(def)
  return HANDLERS[def.kind](def)
end

return faults
