-- sfreports.writers.aligned: the "table" format, columns aligned for a terminal. The
-- fields are the TSV fields (TAB, CR, LF and backslash escaped, so a row stays on one
-- line), numeric columns are right-aligned and East Asian wide characters count as two
-- cells. It is the one format that buffers: the widths are known only after the last row.
-- Pure Lua.
local ipairs = ipairs
local find, byte, rep = string.find, string.byte, string.rep
local concat = table.concat

local aligned = {}

local NUMERIC_TYPES = { int = true, double = true, currency = true, percent = true }

-- East Asian wide and emoji ranges (two terminal cells), and combining marks (none).
local WIDE = {
  { 0x1100, 0x115F }, { 0x2614, 0x2615 }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
  { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF }, { 0xFE30, 0xFE4F },
  { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F }, { 0x1F900, 0x1F9FF }, { 0x20000, 0x3FFFD },
}

local function cp_width(cp)
  if cp >= 0x0300 and cp <= 0x036F then return 0 end
  if cp < 0x1100 then return 1 end
  for _, r in ipairs(WIDE) do
    if cp >= r[1] and cp <= r[2] then return 2 end
  end
  return 1
end

-- Display width of a UTF-8 string in terminal cells.
local function width(s)
  if not find(s, "[\128-\255]") then return #s end
  local w, i, n = 0, 1, #s
  while i <= n do
    local c = byte(s, i)
    local len, cp = 1, c
    if c >= 0xF0 then len, cp = 4, c % 8
    elseif c >= 0xE0 then len, cp = 3, c % 16
    elseif c >= 0xC0 then len, cp = 2, c % 32 end
    for k = i + 1, i + len - 1 do cp = cp * 64 + (byte(s, k) or 128) % 64 end
    if c >= 0x80 and c < 0xC0 then w = w + 1 else w = w + cp_width(cp) end
    i = i + len
  end
  return w
end
aligned.width = width

-- Which output fields (block?, groupings, details) hold numbers, for right alignment.
function aligned.numeric_fields(columns, gcols, blocks)
  local numeric, k = {}, blocks and 1 or 0
  if blocks then numeric[1] = false end
  for _, c in ipairs(gcols) do
    k = k + 1
    numeric[k] = NUMERIC_TYPES[c.data_type] or false
  end
  for _, c in ipairs(columns) do
    k = k + 1
    numeric[k] = NUMERIC_TYPES[c.data_type] or false
  end
  return numeric
end

-- The aligned text of `rows` (lists of fields; rows[1] is the header when `header`),
-- handed to write(chunk) one line at a time. Returns true, or nil and write's error.
function aligned.write(rows, numeric, header, write)
  local widths = {}
  for _, fields in ipairs(rows) do
    for j, f in ipairs(fields) do
      local w = width(f)
      if not widths[j] or w > widths[j] then widths[j] = w end
    end
  end
  local ncols = #widths
  if ncols == 0 then return true end -- no column: nothing to show, not empty lines
  for i, fields in ipairs(rows) do
    local parts = {}
    local is_header = header and i == 1
    for j = 1, ncols do
      local f = fields[j] or ""
      local pad = rep(" ", widths[j] - width(f))
      if not is_header and numeric[j] then parts[j] = pad .. f
      elseif j == ncols then parts[j] = f
      else parts[j] = f .. pad end
    end
    local ok, err = write(concat(parts, "  ") .. "\n")
    if not ok then return nil, err end
    if is_header then
      local rule = {}
      for j = 1, ncols do rule[j] = rep("-", widths[j]) end
      ok, err = write(concat(rule, "  ") .. "\n")
      if not ok then return nil, err end
    end
  end
  return true
end

return aligned
