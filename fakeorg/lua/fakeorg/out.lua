-- fakeorg.out: HTTP responses. Small JSON bodies are sent with Content-Length; report
-- results are streamed (chunked transfer encoding) in ~64 KB pieces with ngx.flush.
local util = require "fakeorg.util"
local data = require "fakeorg.data"

local ngx = ngx
local concat = table.concat

local out = {}

out.JSON = "application/json;charset=UTF-8"
local FLUSH_BYTES = 65536

function out.send(status, body, content_type)
  ngx.status = status
  ngx.header["Content-Type"] = content_type or out.JSON
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(status)
end

function out.json(status, value)
  return out.send(status, util.encode(value))
end

-- Salesforce REST error: a JSON array with one { message, errorCode[, fields] } object.
function out.error(status, code, message, fields)
  local e = { message = message, errorCode = code }
  if fields then e.fields = fields end
  return out.json(status, { e })
end

function out.not_found()
  return out.error(404, "NOT_FOUND", "The requested resource does not exist")
end

function out.no_content()
  ngx.status = 204
  return ngx.exit(204)
end

-- Buffered chunk writer.
local function writer()
  local buf, size = {}, 0
  local w = {}
  function w.put(s)
    buf[#buf + 1] = s
    size = size + #s
    if size >= FLUSH_BYTES then w.flush() end
  end
  function w.flush()
    if size > 0 then
      ngx.print(concat(buf))
      buf, size = {}, 0
      ngx.flush(true)
    end
  end
  return w
end
out.writer = writer

local function row_json(rec, cols)
  local cells = {}
  for i = 1, #cols do cells[i] = data.cell_json(rec, cols[i]) end
  return '{"dataCells":[' .. concat(cells, ",") .. "]}"
end

-- Streams a report result document from fakeorg.engine (head + fact-map entries).
function out.result(status, doc)
  ngx.status = status
  ngx.header["Content-Type"] = out.JSON
  local head = util.shallow_copy(doc.head)
  head.factMap = "@@FACTMAP@@"
  local encoded = util.encode(head)
  local before, after = encoded:match('^(.*)"@@FACTMAP@@"(.*)$')
  local w = writer()
  w.put(before)
  w.put("{")
  for i, entry in ipairs(doc.entries) do
    if i > 1 then w.put(",") end
    w.put(util.encode(entry.key))
    w.put(':{"aggregates":')
    w.put(util.encode(util.arr(entry.aggregates)))
    if entry.rows then
      w.put(',"rows":[')
      local cols = entry.columns or doc.columns
      for r, rec in ipairs(entry.rows) do
        if r > 1 then w.put(",") end
        w.put(row_json(rec, cols))
      end
      w.put("]")
    end
    w.put("}")
  end
  w.put("}")
  w.put(after)
  w.flush()
  return ngx.exit(status)
end

return out
