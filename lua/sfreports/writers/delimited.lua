-- sfreports.writers.delimited: the CSV and TSV row formatters (and the fields of the
-- aligned table, which are the TSV fields). When a header fixes the shape, one text
-- formatter is chosen per column (label or raw mode, currency or not, formula guard);
-- a row is then the block and grouping fields followed by each column's formatter applied
-- to its cell, escaped. Pure Lua; the per-cell loops are the writers' hot path.
local text = require "sfreports.writers.text"

local null = text.null
local type, tostring, setmetatable = type, tostring, setmetatable
local find, format = string.find, string.format
local concat = table.concat
local floor = math.floor
local value_text, field_text, guarded = text.value_text, text.field_text, text.guarded
local fmt_number = text.format_number

local delimited = {}

local EMPTY = {}

---------------------------------------------------------------------------------------
-- one text formatter per column: cell -> unescaped text

-- Text of a bare value (a cell that is not a table), guarded unless it is a number.
local function bare_text(c, guard)
  local s, isnum = value_text(c)
  if guard and not isnum then return guarded(s) end
  return s
end

-- Label mode: the cell's label. A currency cell whose amount is null is empty (its label
-- says "-"). No label, or a null one, falls back to the value; a number label (never sent
-- by Salesforce) is written as Lua prints it.
local function label_formatter(guard, money)
  return function(c)
    if c == nil then return "" end
    if type(c) ~= "table" then return bare_text(c, guard) end
    local v = c.value
    if v == null then return "" end
    local l = c.label
    if type(l) == "string" then
      if money and type(v) == "table" and v.amount == null then return "" end
      if guard then return guarded(l) end
      return l
    end
    if l == nil or l == null then
      if v == nil or (money and type(v) == "table" and v.amount == null) then return "" end
      return bare_text(v, guard)
    end
    local s, isnum = field_text(c, false)
    if guard and not isnum then return guarded(s) end
    return s
  end
end

-- Raw mode: the value (currency: its amount); numbers as the shortest round-trip decimal.
local function raw_formatter(guard)
  return function(c)
    if c == nil then return "" end
    local v = c
    if type(c) == "table" then v = c.value end
    if v == nil or v == null then return "" end
    local tv = type(v)
    if tv == "table" then
      local a = v.amount
      if a ~= nil then v, tv = a, type(a) end
    end
    if tv == "string" then
      if guard then return guarded(v) end
      return v
    elseif tv == "number" then
      if v == floor(v) and v > -9007199254740992 and v < 9007199254740992 then return format("%d", v) end
      return fmt_number(v)
    elseif v == null then
      return ""
    end
    return bare_text(v, guard)
  end
end

-- Groupings: the grouping's label (label mode) or value, null as empty.
local function grouping_formatter(raw, guard)
  return function(g)
    local s, isnum = field_text(g, raw)
    if guard and not isnum then return guarded(s) end
    return s
  end
end

-- The formatter of each detail column, chosen once for the shape.
local function column_formatters(columns, raw, guard)
  local fmts = {}
  for i = 1, #columns do
    if raw then
      fmts[i] = raw_formatter(guard)
    else
      fmts[i] = label_formatter(guard, columns[i].data_type == "currency")
    end
  end
  return fmts
end

---------------------------------------------------------------------------------------
-- escaping a whole row at once

-- Escapes, in place, the fields buf[1..n] that contain one of the characters in
-- `specials` (an array of one-character strings). The row is joined once and searched
-- with plain (memchr-speed) finds, one pass per special character; each hit is mapped
-- back to its field by the field lengths. A row without special characters costs one
-- concat and #specials finds instead of a pattern match per field. `marks` and `firsts`
-- are scratch tables owned by the caller, `stamp` a value unique to this call; a field
-- is passed to escape(s, true) when it holds specials[1], escape(s, false) otherwise.
local function escape_fields(buf, n, specials, escape, marks, firsts, stamp)
  local joined = concat(buf, "", 1, n)
  local nhits = 0
  for k = 1, #specials do
    local ch = specials[k]
    local p = find(joined, ch, 1, true)
    local i, start = 1, 1
    while p do
      local stop = start + #buf[i] -- first position after field i
      while p >= stop do
        i = i + 1
        start = stop
        stop = start + #buf[i]
      end
      if marks[i] ~= stamp then
        marks[i] = stamp
        nhits = nhits + 1
      end
      if k == 1 then firsts[i] = stamp end
      if i >= n then break end
      i = i + 1
      start = stop
      p = find(joined, ch, start, true)
    end
  end
  if nhits > 0 then
    for i = 1, n do
      if marks[i] == stamp then buf[i] = escape(buf[i], firsts[i] == stamp) end
    end
  end
end

---------------------------------------------------------------------------------------
-- the layout of one shape

-- sep: "," (CSV) or "\t" (TSV); csv: CSV quoting (default when sep is ","), which
-- quotes fields holding sep when it is another character (writers' delimiter option).
-- Returns { line = row -> text, fields = row -> list of escaped fields, header = labels ->
-- text, width = number of fields }. A shape without any field (no column at all) writes
-- nothing, not empty lines.
function delimited.layout(sep, raw, guard, columns, gcols, blocks, csv)
  if csv == nil then csv = sep == "," end
  local escape = csv and text.csv_escape or text.tsv_escape
  local specials = csv and text.CSV_CHARS or text.TSV_CHARS
  if csv and sep ~= "," then escape, specials = text.csv_escaper(sep) end
  local escape_hit = csv and text.csv_quote or text.tsv_escape
  local ncols, ngroups = #columns, #gcols
  local fmts = column_formatters(columns, raw, guard)
  local money = {}
  for i = 1, ncols do money[i] = columns[i].data_type == "currency" end
  local group_text = grouping_formatter(raw, guard)
  local width = ncols + ngroups + (blocks and 1 or 0)
  local buf, marks, firsts, stamp = {}, {}, {}, 0
  local prefixes = setmetatable({}, { __mode = "k" })

  -- The block and grouping fields of a row, escaped, in `out` from index k + 1.
  local function lead_fields(row, out, k)
    if blocks then
      local b = row.block
      k = k + 1
      out[k] = escape(b ~= nil and tostring(b) or "")
    end
    local groups = row.groups or EMPTY
    for i = 1, ngroups do
      k = k + 1
      out[k] = escape(group_text(groups[i]))
    end
    return k
  end

  -- The grouping fields joined (no trailing separator); cached per groups table, which
  -- all rows of one fact-map entry share.
  local function prefix_of(row)
    local groups = row.groups or EMPTY
    local p = prefixes[groups]
    if p == nil then
      local parts = {}
      for i = 1, ngroups do parts[i] = escape(group_text(groups[i])) end
      p = concat(parts, sep)
      prefixes[groups] = p
    end
    return p
  end

  -- The detail fields, unescaped, into buf[1..ncols]. A row whose cells are all tables
  -- with string labels, in column order (row.text_labels: the report model checked them)
  -- takes an inlined copy of label_formatter for that case, without a call per cell.
  local function fill(row)
    local cells = row.data_cells or row.cells or EMPTY
    if not raw and row.text_labels == true then
      for i = 1, ncols do
        local c = cells[i]
        local s = ""
        if c ~= nil then
          local v = c.value
          if v ~= null and not (money[i] and type(v) == "table" and v.amount == null) then
            s = c.label
            if guard then s = guarded(s) end
          end
        end
        buf[i] = s
      end
      return
    end
    local slots = row.slots
    if slots == nil then
      for i = 1, ncols do buf[i] = fmts[i](cells[i]) end
    else
      for i = 1, ncols do buf[i] = "" end
      for i = 1, #cells do
        local j = slots[i]
        if j and j <= ncols then buf[j] = fmts[j](cells[i]) end
      end
    end
  end

  -- The line is concat(buf, sep, first, last): buf[0] holds the block and grouping
  -- fields when there are any, and the last field carries the line end, so each row
  -- builds one line string.
  local first = (ngroups > 0 or blocks) and 0 or 1
  local last = ncols
  if last < first then
    last = first
    buf[first] = ""
  end

  local layout = { width = width }

  function layout.line(row)
    if width == 0 then return "" end
    if first == 0 then
      local prefix = ngroups > 0 and (prefixes[row.groups or EMPTY] or prefix_of(row)) or nil
      if blocks then
        local b = row.block
        b = escape(b ~= nil and tostring(b) or "")
        if prefix then prefix = b .. sep .. prefix else prefix = b end
      end
      buf[0] = prefix
    end
    if ncols > 0 then
      fill(row)
      stamp = stamp + 1
      escape_fields(buf, ncols, specials, escape_hit, marks, firsts, stamp)
    end
    local tail = buf[last]
    buf[last] = tail .. "\n"
    local line = concat(buf, sep, first, last)
    buf[last] = tail
    return line
  end

  function layout.fields(row)
    local out = {}
    local k = lead_fields(row, out, 0)
    fill(row)
    for i = 1, ncols do out[k + i] = escape(buf[i]) end
    return out
  end

  -- The header fields, escaped (and guarded).
  function layout.header_fields(labels)
    local out = {}
    for i = 1, #labels do
      local s = labels[i]
      if guard then s = guarded(s) end
      out[i] = escape(s)
    end
    return out
  end

  function layout.header(labels)
    if width == 0 then return "" end
    return concat(layout.header_fields(labels), sep) .. "\n"
  end

  return layout
end

return delimited
