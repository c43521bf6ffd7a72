-- fuzz/make_seeds.lua: writes the seed corpus of the response fuzzer (fuzz/corpus/) from
-- the spec fixtures plus hand-made responses (errors, HTML, gzip, odd headers).
--   lua5.4 fuzz/make_seeds.lua        (from the repository root; needs gzip(1))
-- Input format (see response_fuzzer.c): 2 bytes status-100, 1 flag byte, headers, blank
-- line, body.
local function response(status, flags, headers, body)
  local v = status - 100
  return string.char(v // 256, v % 256, flags) .. headers .. "\r\n" .. body
end

local function write(name, data)
  local f = assert(io.open("fuzz/corpus/" .. name, "wb"))
  f:write(data)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function gzip(s)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(s)
  f:close()
  local p = assert(io.popen("gzip -c -n " .. tmp, "r"))
  local z = p:read("*a")
  p:close()
  os.remove(tmp)
  return z
end

local JSON = "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n"
  .. "Sforce-Limit-Info: api-usage=10/15000\r\n"

-- Fixtures: kept to their first 12 KB (the fuzzer's max_len is 16 KB); the small ones whole.
local p = assert(io.popen("ls spec/fixtures/*.json"))
for path in p:lines() do
  local name = path:match("([^/]+)%.json$")
  write("fixture_" .. name, response(200, 0, JSON, read(path):sub(1, 12 * 1024)))
end
p:close()

local small = '{"attributes":{"type":"Report","reportId":"00OFk00000A0001MAB"},"allData":true,'
  .. '"factMap":{"T!T":{"aggregates":[{"label":"1","value":1}],"rows":[]}},"x":[null,1.5e3,"\\u00e9"]}'
write("ok_small", response(200, 0, JSON, small))
write("ok_gzip", response(200, 0, JSON .. "Content-Encoding: gzip\r\n", gzip(small)))
write("gzip_cut", response(200, 0, JSON .. "Content-Encoding: gzip\r\n", gzip(small):sub(1, 40)))
write("no_content_204", response(204, 1, "HTTP/1.1 204 No Content\r\n", ""))
write("empty_200", response(200, 0, JSON .. "Content-Length: 0\r\n", ""))
write("blank_200", response(200, 0, JSON, " \r\n\t "))
write("html_502", response(502, 0, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n",
  "<html><head><title>502</title></head><body><h1>Bad Gateway</h1>\n<p>try later</p></body></html>"))
write("html_200", response(200, 0, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", "<p>login</p>"))
write("invalid_session", response(401, 0, JSON,
  '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'))
write("limit_retry_after", response(403, 0, JSON .. "Retry-After: 120\r\n",
  '[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]'))
write("unavailable_503", response(503, 0, JSON .. "Retry-After: 1.5\r\n",
  '[{"errorCode":"SERVER_UNAVAILABLE","message":"Try again later."}]'))
write("malformed_id", response(400, 0, JSON,
  '[{"fields":["Id"],"message":"Report ID: id value of incorrect type: X","errorCode":"MALFORMED_ID"}]'))
write("oauth_error", response(400, 0, JSON, '{"error":"invalid_grant","error_description":"expired"}'))
write("error_not_array", response(500, 0, JSON, '{"errorCode":1,"message":[]}'))
write("error_broken", response(500, 0, JSON, '[{"errorCode":"X","message":"cut'))
write("odd_headers", response(200, 0, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n:novalue\r\n"
  .. "NoColonLine\r\nX-Empty:\r\nContent-Type:\t application/json \r\nRetry-After: soon\r\n", "[]"))
write("deep_nesting", response(200, 0, JSON, string.rep("[", 1200) .. string.rep("]", 1200)))
write("numbers", response(200, 0, JSON, "[1e400,-1e-400,0.0000001,123456789012345678901234567890,-0]"))
-- 8 MB of zeros in ~8 KB: gunzip must stop at its cap, not allocate the lot. Kept in
-- spec/fixtures/fuzz_regressions/ only: as a seed it would slow every mutation of it.
write("../../spec/fixtures/fuzz_regressions/gzip_bomb",
  response(200, 0, JSON .. "Content-Encoding: gzip\r\n", gzip(string.rep("\0", 8 * 1024 * 1024))))
