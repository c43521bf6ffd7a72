-- spec/support/xlsx_reader.lua: an independent .xlsx reader for the specs: the parts
-- are taken out of the zip by unzip(1) (Debian's unzip, not libxlsxwriter nor anything
-- of sfreports) and the sheet XML is parsed here, in plain Lua.
--   local reader = require "xlsx_reader"
--   local book = reader.open(path)          -- raises when unzip cannot read the file
--   book.sheets                             -- { { name =, part = "xl/worksheets/sheet1.xml" }, ... }
--   local sheet = book:sheet(1)             -- { rows = { [r] = { [c] = cell } }, xml = text, last_row = n }
--   cell = { ref =, type = "n" | "s" | "b" | "str", value = number | string | boolean,
--            style = xf index, num_format = format code ("General"...), bold = bool }
--   reader.date(serial) -> "YYYY-MM-DD", "HH:MM:SS"   (Excel's 1900 system, serial >= 61)
local fakeorg = require "fakeorg"

local q = fakeorg.shell_quote

local reader = {}

local function unzip(path, part)
  local out, ok = fakeorg.run("unzip -p " .. q(path) .. " " .. q(part))
  if not ok then error("unzip cannot read " .. part .. " of " .. path, 3) end
  return out
end
reader.unzip = unzip

-- Whether unzip(1) finds the archive sound (CRCs checked).
function reader.test(path)
  local out, ok = fakeorg.run("unzip -t " .. q(path) .. " 2>&1")
  return ok and out:find("No errors detected", 1, true) ~= nil, out
end

local ENT = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function unescape(s)
  s = s:gsub("&(#?x?)(%w+);", function(kind, body)
    if kind == "#x" then return utf8_char(tonumber(body, 16)) end
    if kind == "#" then return utf8_char(tonumber(body)) end
    return ENT[body] or ("&" .. body .. ";")
  end)
  -- OOXML's escape of characters XML cannot hold: _xHHHH_
  return (s:gsub("_x(%x%x%x%x)_", function(h) return utf8_char(tonumber(h, 16)) end))
end
reader.unescape = unescape

local function attr(attrs, name)
  local v = attrs:match("%f[%w]" .. name .. '="([^"]*)"')
  return v and unescape(v)
end
reader.attr = attr

local BUILTIN = { [0] = "General", [1] = "0", [2] = "0.00", [3] = "#,##0", [4] = "#,##0.00", [9] = "0%",
  [10] = "0.00%", [14] = "mm-dd-yy", [22] = "m/d/yy h:mm" }

local function column_number(letters)
  local n = 0
  for i = 1, #letters do n = n * 26 + (letters:byte(i) - 64) end
  return n
end

local Book = {}
Book.__index = Book

function reader.open(path)
  local book = setmetatable({ path = path, sheets = {} }, Book)
  local wb = unzip(path, "xl/workbook.xml")
  local rels = unzip(path, "xl/_rels/workbook.xml.rels")
  local targets = {}
  for attrs in rels:gmatch("<Relationship(%s[^>]*)/>") do
    targets[attr(attrs, "Id")] = attr(attrs, "Target")
  end
  for attrs in wb:gmatch("<sheet(%s[^>]*)/>") do
    local target = targets[attr(attrs, "r:id")]
    book.sheets[#book.sheets + 1] = { name = attr(attrs, "name"), part = "xl/" .. target:gsub("^/?xl/", "") }
  end
  -- styles: cellXfs -> number format code and bold font
  local styles = unzip(path, "xl/styles.xml")
  local fmts = {}
  for attrs in styles:gmatch("<numFmt(%s[^>]*)/>") do
    fmts[tonumber(attr(attrs, "numFmtId"))] = attr(attrs, "formatCode")
  end
  local fonts = {}
  local fonts_xml = styles:match("<fonts[^>]*>(.-)</fonts>") or ""
  for font in fonts_xml:gmatch("<font>(.-)</font>") do fonts[#fonts + 1] = font:find("<b/>", 1, true) ~= nil end
  book.xfs = {}
  local xfs_xml = styles:match("<cellXfs[^>]*>(.-)</cellXfs>") or ""
  for attrs in xfs_xml:gmatch("<xf(%s[^>]*)/?>") do
    local id = tonumber(attr(attrs, "numFmtId")) or 0
    book.xfs[#book.xfs + 1] = { num_format = fmts[id] or BUILTIN[id] or ("builtin " .. id),
      bold = fonts[(tonumber(attr(attrs, "fontId")) or 0) + 1] == true }
  end
  return book
end

-- Parses sheet i (a number or a name).
function Book:sheet(i)
  local info
  for k, s in ipairs(self.sheets) do
    if k == i or s.name == i then info = s end
  end
  if not info then return nil end
  local xml = unzip(self.path, info.part)
  local sheet = { name = info.name, xml = xml, rows = {}, last_row = 0 }
  local data = xml:match("<sheetData>(.-)</sheetData>") or ""
  local pos = 1
  while true do
    local s, e, attrs, close = data:find("<c(%s[^>]*)(/?)>", pos)
    if not s then break end
    local body = ""
    if close == "" then
      local ce = data:find("</c>", e + 1, true)
      body = data:sub(e + 1, ce - 1)
      pos = ce + 4
    else
      pos = e + 1
    end
    local ref = attr(attrs, "r")
    local letters, row = ref:match("^(%u+)(%d+)$")
    row = tonumber(row)
    local style = tonumber(attr(attrs, "s") or "0")
    local xf = self.xfs[style + 1] or {}
    local t = attr(attrs, "t")
    local cell = { ref = ref, style = style, num_format = xf.num_format, bold = xf.bold,
      formula = body:find("<f", 1, true) ~= nil }
    if t == "inlineStr" then
      local parts = {}
      for text in body:gmatch("<t[^>]*>(.-)</t>") do parts[#parts + 1] = unescape(text) end
      cell.type, cell.value = "s", table.concat(parts)
    elseif t == "b" then
      cell.type, cell.value = "b", body:match("<v>(.-)</v>") == "1"
    elseif t == "s" then
      error("shared strings are not expected in constant-memory output")
    elseif t == "str" then
      cell.type, cell.value = "str", unescape(body:match("<v>(.-)</v>") or "")
    else
      local v = body:match("<v>(.-)</v>")
      if v then cell.type, cell.value = "n", tonumber(v) end
    end
    if cell.type then
      local r = sheet.rows[row]
      if not r then r = {}; sheet.rows[row] = r end
      r[column_number(letters)] = cell
      if row > sheet.last_row then sheet.last_row = row end
    end
  end
  return sheet
end

-- Excel serial (1900 system, after 1900-02-28) -> "YYYY-MM-DD", "HH:MM:SS".
function reader.date(serial)
  local days = math.floor(serial)
  local secs = math.floor((serial - days) * 86400 + 0.5)
  -- days since 1899-12-30, civil-from-days (Howard Hinnant), epoch 1970-01-01 = 25569
  local z = days - 25569 + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  if secs >= 86400 then secs = 86399 end
  return string.format("%04d-%02d-%02d", y, m, d),
    string.format("%02d:%02d:%02d", math.floor(secs / 3600), math.floor(secs / 60) % 60, secs % 60)
end

return reader
