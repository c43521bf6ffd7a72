-- fakeorg.xlsx: Salesforce's formatted export. A sync run asked for with
-- `Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` answers a
-- real .xlsx (an Office Open XML workbook: a zip holding [Content_Types].xml, the rels,
-- xl/workbook.xml, xl/styles.xml and one worksheet) with that Content-Type and
-- `Content-Disposition: attachment; filename="<report name>.xlsx"`. The zip is written
-- as it is sent (chunked, 64 KB flushes): stored entries, the worksheet with a data
-- descriptor (its CRC is computed while it streams), so neither side needs the whole
-- file in memory. Errors stay JSON (fakeorg.out.error), as Salesforce's do.
-- Sheet: row 1 the detail column labels (bold), then one row per detail row: numbers
-- (currency amounts, percents, int, double) as numbers, everything else as its label.
local bit = require "bit"
local out = require "fakeorg.out"
local data = require "fakeorg.data"

local ngx = ngx
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
local byte, char, floor, concat, gsub, rep, find, lower =
  string.byte, string.char, math.floor, table.concat, string.gsub, string.rep, string.find, string.lower

local M = {}

M.TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

-- True when the request's Accept header asks for an xlsx.
function M.wanted()
  local accept = ngx.var.http_accept
  return accept ~= nil and find(lower(accept), M.TYPE, 1, true) ~= nil
end

---------------------------------------------------------------------------------------
-- CRC-32 (zip's, reflected 0xEDB88320)

local CRC = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) == 1 then c = bxor(rshift(c, 1), 0xEDB88320) else c = rshift(c, 1) end
  end
  CRC[i] = c
end

-- crc: the running value as bit ops give it (start with 0).
local function crc32(crc, s)
  crc = bxor(crc, 0xFFFFFFFF)
  for i = 1, #s do
    crc = bxor(rshift(crc, 8), CRC[band(bxor(crc, byte(s, i)), 0xFF)])
  end
  return bxor(crc, 0xFFFFFFFF)
end

local function u16(n) return char(n % 256, floor(n / 256) % 256) end
local function u32(n)
  n = n % 4294967296
  return char(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256, floor(n / 16777216) % 256)
end

---------------------------------------------------------------------------------------
-- a zip written as it goes: put(s) sends bytes

local DOS_TIME, DOS_DATE = 0, 33 -- 1980-01-01 00:00

local function new_zip(put)
  local z = { put = put, offset = 0, central = {}, count = 0 }
  local function emit(s)
    put(s)
    z.offset = z.offset + #s
  end
  local function local_header(name, flags, crc, size)
    return "PK\3\4" .. u16(20) .. u16(flags) .. u16(0) .. u16(DOS_TIME) .. u16(DOS_DATE)
      .. u32(crc) .. u32(size) .. u32(size) .. u16(#name) .. u16(0) .. name
  end
  local function central(name, flags, crc, size, at)
    z.count = z.count + 1
    z.central[z.count] = "PK\1\2" .. u16(20) .. u16(20) .. u16(flags) .. u16(0) .. u16(DOS_TIME)
      .. u16(DOS_DATE) .. u32(crc) .. u32(size) .. u32(size) .. u16(#name) .. u16(0) .. u16(0)
      .. u16(0) .. u16(0) .. u32(0) .. u32(at) .. name
  end
  -- a whole (small) entry
  function z.file(name, content)
    local at, crc = z.offset, crc32(0, content)
    emit(local_header(name, 0, crc, #content))
    emit(content)
    central(name, 0, crc, #content, at)
  end
  -- an entry streamed piece by piece: returns write(s) and close()
  function z.stream(name)
    local at, crc, size = z.offset, 0, 0
    emit(local_header(name, 8, 0, 0))
    local function write(s)
      crc = crc32(crc, s)
      size = size + #s
      emit(s)
    end
    local function close()
      emit("PK\7\8" .. u32(crc) .. u32(size) .. u32(size))
      central(name, 8, crc, size, at)
    end
    return write, close
  end
  function z.finish()
    local at = z.offset
    local dir = concat(z.central)
    emit(dir)
    emit("PK\5\6" .. u16(0) .. u16(0) .. u16(z.count) .. u16(z.count) .. u32(#dir) .. u32(at) .. u16(0))
  end
  return z
end

---------------------------------------------------------------------------------------
-- the workbook parts

local HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
local MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
local REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

local CONTENT_TYPES = HEAD .. '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
  .. '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
  .. '<Default Extension="xml" ContentType="application/xml"/>'
  .. '<Override PartName="/xl/workbook.xml" '
  .. 'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
  .. '<Override PartName="/xl/worksheets/sheet1.xml" '
  .. 'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
  .. '<Override PartName="/xl/styles.xml" '
  .. 'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'

local ROOT_RELS = HEAD .. '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
  .. '<Relationship Id="rId1" Type="' .. REL .. '/officeDocument" Target="xl/workbook.xml"/></Relationships>'

local WORKBOOK_RELS = HEAD .. '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
  .. '<Relationship Id="rId1" Type="' .. REL .. '/worksheet" Target="worksheets/sheet1.xml"/>'
  .. '<Relationship Id="rId2" Type="' .. REL .. '/styles" Target="styles.xml"/></Relationships>'

local STYLES = HEAD .. '<styleSheet xmlns="' .. MAIN .. '">'
  .. '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
  .. '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
  .. '<fills count="2"><fill><patternFill patternType="none"/></fill>'
  .. '<fill><patternFill patternType="gray125"/></fill></fills>'
  .. '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
  .. '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
  .. '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
  .. '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs></styleSheet>'

local XML_ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }
local function xml_text(s)
  s = gsub(s, "[%z\1-\8\11\12\14-\31]", "")
  return (gsub(s, '[&<>"]', XML_ESC))
end

local function workbook(sheet_name)
  return HEAD .. '<workbook xmlns="' .. MAIN .. '" xmlns:r="' .. REL .. '"><sheets>'
    .. '<sheet name="' .. xml_text(sheet_name) .. '" sheetId="1" r:id="rId1"/></sheets></workbook>'
end

local LETTERS = {}
local function column_name(i)
  local s = LETTERS[i]
  if s then return s end
  local n, out_ = i, ""
  while n > 0 do
    local m = (n - 1) % 26
    out_ = char(65 + m) .. out_
    n = floor((n - 1) / 26)
  end
  LETTERS[i] = out_
  return out_
end

local function string_cell(ref, text, style)
  return '<c r="' .. ref .. '" t="inlineStr"' .. (style and ' s="' .. style .. '"' or "")
    .. '><is><t xml:space="preserve">' .. xml_text(text) .. "</t></is></c>"
end

-- One sheet row: cells = array of { number } or { text }.
local function row_xml(r, cells, style)
  local parts = { '<row r="' .. r .. '">' }
  for i, c in ipairs(cells) do
    local ref = column_name(i) .. r
    if c.number then
      parts[#parts + 1] = '<c r="' .. ref .. '"><v>' .. string.format("%.17g", c.number) .. "</v></c>"
    elseif c.text and c.text ~= "" then
      parts[#parts + 1] = string_cell(ref, c.text, style)
    end
  end
  parts[#parts + 1] = "</row>"
  return concat(parts)
end

local NUMERIC = { currency = true, percent = true, int = true, double = true }

local function record_cells(rec, cols)
  local cells = {}
  for i, col in ipairs(cols) do
    local raw = rec[col.name]
    if raw == nil then
      cells[i] = {}
    elseif NUMERIC[col.kind] and type(raw) == "number" then
      cells[i] = { number = raw }
    else
      local _, label = data.cell(col, raw)
      cells[i] = { text = tostring(label) }
    end
  end
  return cells
end

---------------------------------------------------------------------------------------
-- serving

local function start(filename)
  ngx.ctx.fakeorg_own_encoding = true
  ngx.status = 200
  ngx.header["Content-Type"] = M.TYPE
  ngx.header["Content-Disposition"] = 'attachment; filename="' .. gsub(filename, '["\\%c]', "_") .. '"'
end

-- Sends a workbook whose one sheet is named `name`: the sheet's rows come from
-- rows(write_row), which calls write_row(cells) per row. fault: { after = bytes,
-- seconds = s }: stop after that many bytes (after s seconds of silence), closing the
-- connection without the end of the body.
local function send(name, header, rows, fault)
  local w = out.writer()
  local sent, cut = 0, false
  local function put(s)
    if cut then return end
    if fault and sent + #s > fault.after then
      w.put(s:sub(1, fault.after - sent))
      w.flush()
      cut = true
      if fault.seconds then ngx.sleep(fault.seconds) end
      return ngx.exit(444)
    end
    sent = sent + #s
    w.put(s)
  end
  local z = new_zip(put)
  z.file("[Content_Types].xml", CONTENT_TYPES)
  z.file("_rels/.rels", ROOT_RELS)
  -- an Excel sheet name: at most 31 characters, none of []:*?/\
  z.file("xl/workbook.xml", workbook((gsub(name, "[%[%]:%*%?/\\]", " ")):sub(1, 31)))
  z.file("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
  z.file("xl/styles.xml", STYLES)
  local write, close = z.stream("xl/worksheets/sheet1.xml")
  write(HEAD .. '<worksheet xmlns="' .. MAIN .. '"><sheetData>')
  local hcells = {}
  for i, label in ipairs(header) do hcells[i] = { text = label } end
  write(row_xml(1, hcells, 1))
  local r = 1
  rows(function(cells)
    r = r + 1
    write(row_xml(r, cells))
  end)
  write("</sheetData></worksheet>")
  close()
  z.finish()
  w.flush()
  return ngx.exit(200)
end

-- The formatted export of a run: doc from fakeorg.engine (its detail rows, every entry
-- that holds rows, in order). fault: { after = bytes, seconds = s } cuts it (see faults).
function M.serve(report, doc, fault)
  start((report.name or "report") .. ".xlsx")
  local cols = doc.columns
  local header = {}
  for i, col in ipairs(cols) do header[i] = col.label or col.name end
  return send(report.name or "Report", header, function(write_row)
    for _, entry in ipairs(doc.entries) do
      for _, rec in ipairs(entry.rows or {}) do
        write_row(record_cells(rec, entry.columns or cols))
      end
    end
  end, fault)
end

-- A valid workbook of about `bytes` (the `huge` fault asked for an xlsx), or one cut
-- after `after` bytes (the `reset` and `stall` faults).
function M.serve_sized(bytes, fault)
  start("Huge.xlsx")
  local text = rep("y", 1000)
  return send("Huge", { "Description", "Number" }, function(write_row)
    local sent, i = 0, 0
    while sent < bytes do
      i = i + 1
      write_row({ { text = text }, { number = i } })
      sent = sent + 1100
    end
  end, fault)
end

return M
