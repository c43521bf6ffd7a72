-- sfreports.writers: streaming CSV / TSV / JSON / JSON Lines writers for report rows.
--
-- Every writer formats and writes one row at a time, as rows are iterated: the output is
-- never assembled in memory. Pure Lua (no C core, no client).
--
--   local writers = require "sfreports.writers"
--   local n, err = writers.csv(report, io.stdout)                 -- label mode
--   local n, err = writers.tsv(report, file, { raw = true })      -- values
--   local n, err = writers.json(report, function(chunk) ... end)
--   local n, err = writers.write("jsonl", report, sink, opts)
--
--   -- several pages (or any row source) into one output:
--   local w = writers.new("csv", sink, opts)
--   assert(w:header(first_page))           -- a report, or { columns = ..., grouping_columns = ... }
--   for _, page in ipairs(pages) do for row in page:rows() do assert(w:row(row)) end end
--   local n, err = w:finish()
--
-- API:
--   writers.new(format, sink [, opts]) -> writer   format "csv" | "tsv" | "json" | "jsonl"
--                                                  (alias "ndjson")
--   writer:header(source) -> true | nil, err       fixes the shape, writes the header
--   writer:row(row)       -> true | nil, err
--   writer:rows(iterator) -> rows written | nil, err
--   writer:finish()       -> rows written in all | nil, err   (writer.count: so far)
--   writers.write(format, source, sink [, opts]) -> rows written | nil, err
--   writers.csv / tsv / json / jsonl / ndjson(source, sink [, opts]) -> same
--   writers.format_number(n), writers.value_text(v), writers.json_string(s): the
--   formatting the writers use, for callers that format single values the same way.
-- Misuse (unknown format or option, a sink without :write, row() before header() or
-- after finish(), header() or finish() twice) raises an error string.
--
-- Sources. `writers.<format>(source, sink, opts)` takes a report object (anything with
-- :columns(), :grouping_columns() and :rows()), or a row iterator function together with
-- `opts.columns` (and optionally `opts.grouping_columns`). A column description is a
-- table { name =, label = } or a plain string (used as both). A row is a table with
-- `data_cells` (raw dataCells) or `cells` (typed cells), each cell a table { value, label },
-- and optionally `groups` (array of { value, label }, aligned with the grouping columns),
-- `block` and `slots` (MULTI_BLOCK, see sfreports.report). Rows are written at the
-- header's width: missing cells are empty, cells beyond the header are not written.
--
-- Sinks. A function(chunk) or anything with a :write(chunk) method (file handles). A
-- write that fails (returns nil/false plus an error) stops the writer: the call returns
-- nil and that error, and every later call returns the same.
--
-- Options:
--   raw = false          label mode (default): each cell's display label; raw = true: values
--   formula_guard = false  CSV/TSV only: a field starting with "=", "+", "-", "@", TAB or CR
--                        gets a leading "'" (spreadsheet formula injection). Fields written
--                        from numbers (raw mode) are never prefixed.
--   header = true        CSV/TSV: write the header line (false: columns still fix the shape)
--   columns, grouping_columns   the shape, when the source is an iterator
--
-- The CSV/TSV shape (a contract): one header line of grouping column labels (down levels
-- then across levels; SUMMARY and MATRIX) followed by the detail column labels; then one
-- line per detail row in report:rows() order, grouping fields first. A MULTI_BLOCK report
-- gets a leading "Block" column holding each row's block id.
--   label mode: a cell's label; a grouping's label.
--   raw mode:   strings as is; numbers as the shortest decimal that reads back to the same
--               double (integers without a fraction, e.g. 350000000, 0.1, 16000.01);
--               currency as its amount; booleans as true/false; dates as given; other
--               objects as compact JSON. Groupings likewise from their values.
--   JSON null (a cell or grouping value, or the amount of a currency value; the report
--   types all three as null) is an empty field in both modes, whatever the label ("-")
--   says. A label that is absent, null or not a string falls back to the value (a
--   number label, never sent by Salesforce, is written as Lua formats it).
-- CSV follows RFC 4180: a field containing "," '"' CR or LF is quoted and '"' doubled;
-- lines end with LF. Fields are UTF-8 as received; no BOM.
-- TSV: fields are separated by TAB, lines end with LF; a field never contains a raw TAB,
-- CR or LF: they are escaped as the two characters \t, \r, \n, and a backslash as \\
-- (the "linear TSV" convention; unescape in one pass to get the original text back).
--
-- JSON: an array of row objects, one per line: "[\n{...},\n{...}\n]\n" ("[]\n" when
-- empty). JSON Lines: one object per line. An object holds the grouping fields then the
-- detail fields, keyed by column API name (the label when a column has no name; a key
-- that repeats gets "_2", "_3", ... appended; MULTI_BLOCK rows start with "block").
-- Label mode: labels as JSON strings. Raw mode: typed values (numbers as the shortest
-- round-trip decimal, booleans, currency amounts, strings, other objects as JSON). A
-- null (as in CSV) is null in both modes. formula_guard does not apply to JSON.
local json = require "sfreports.json"

local null = json.null
local type, tostring, setmetatable, error, pcall, pairs = type, tostring, setmetatable, error, pcall, pairs
local find, gsub, format, byte, char = string.find, string.gsub, string.format, string.byte, string.char
local concat = table.concat
local floor, huge = math.floor, math.huge
local json_encode = json.encode
local number_text = json.number_text
local cjson_encode = require("cjson").encode

local writers = {}

local EMPTY = {}

---------------------------------------------------------------------------------------
-- values to text

-- Shortest decimal that reads back to the same double; integers without a fraction.
local function fmt_number(v)
  if v ~= v then return "NaN" end
  if v == huge then return "Infinity" end
  if v == -huge then return "-Infinity" end
  return number_text(v)
end
writers.format_number = fmt_number

-- Text of a non-null value in raw mode; the second result is true when it came from a number.
local function value_text(v)
  local tv = type(v)
  if tv == "string" then return v, false end
  if tv == "number" then return fmt_number(v), true end
  if tv == "boolean" then return v and "true" or "false", false end
  if v == nil or v == null then return "", false end
  if tv == "table" then
    local amount = v.amount
    if amount ~= nil then return value_text(amount) end
    local ok, s = pcall(json_encode, v)
    if ok then return s, false end
  end
  return tostring(v), false
end
writers.value_text = value_text

-- JSON null, or a currency object whose amount is null (typed as null by the report).
local function is_null(v)
  return v == null or (type(v) == "table" and v.amount == null)
end

-- Text of one cell or grouping ({ value, label }); second result as value_text.
local function field_text(c, raw)
  if c == nil then return "", false end
  local v = c.value
  if is_null(v) then return "", false end
  if not raw then
    local l = c.label
    local tl = type(l)
    if tl == "string" then return l, false end
    if tl == "number" then return tostring(l), false end
  end
  if v == nil then return "", false end
  return value_text(v)
end

---------------------------------------------------------------------------------------
-- field escaping

local function guarded(s)
  local b = byte(s, 1)
  if b == 61 or b == 43 or b == 45 or b == 64 or b == 9 or b == 13 then return "'" .. s end
  return s
end

local CSV_SPECIAL = '[,"\r\n]'
local CSV_CHARS = { '"', ",", "\n", "\r" } -- '"' first: see escape_fields
local function csv_quote(s, has_quote) -- s needs quoting; has_quote: s contains '"'
  if has_quote then s = gsub(s, '"', '""') end
  return '"' .. s .. '"'
end
local function csv_escape(s)
  if find(s, CSV_SPECIAL) then return csv_quote(s, find(s, '"', 1, true)) end
  return s
end

local TSV_SPECIAL = "[\\\t\r\n]"
local TSV_CHARS = { "\t", "\n", "\r", "\\" }
local TSV_MAP = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\r"] = "\\r", ["\n"] = "\\n" }
local function tsv_escape(s)
  if find(s, TSV_SPECIAL) then return (gsub(s, TSV_SPECIAL, TSV_MAP)) end
  return s
end

local JSON_SPECIAL = '[%c"\\]'
local JSON_MAP = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                   ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do
  local c = char(i)
  if not JSON_MAP[c] then JSON_MAP[c] = format("\\u%04x", i) end
end
JSON_MAP["\127"] = "\\u007f"

local function json_string(s)
  if find(s, JSON_SPECIAL) then s = gsub(s, JSON_SPECIAL, JSON_MAP) end
  return '"' .. s .. '"'
end
writers.json_string = json_string

-- JSON text of a non-null raw value.
local function json_value(v)
  local tv = type(v)
  if tv == "string" then return json_string(v) end
  if tv == "number" then
    if v ~= v or v == huge or v == -huge then return "null" end
    return fmt_number(v)
  end
  if tv == "boolean" then return v and "true" or "false" end
  if v == nil or v == null then return "null" end
  if tv == "table" then
    local amount = v.amount
    if amount ~= nil then return json_value(amount) end
    local ok, s = pcall(json_encode, v)
    if ok then return s end
  end
  return json_string(tostring(v))
end

local function json_field(c, raw)
  if c == nil then return "null" end
  local v = c.value
  if is_null(v) then return "null" end
  if not raw then
    local l = c.label
    if type(l) == "string" then return json_string(l) end
  end
  if v == nil then return "null" end
  return json_value(v)
end

---------------------------------------------------------------------------------------
-- sources and sinks

local function make_write(sink)
  if type(sink) == "function" then
    return function(chunk)
      local ok, err = sink(chunk)
      if ok == false or (ok == nil and err ~= nil) then return nil, err or "sink failed" end
      return true
    end
  end
  local has_write = false
  if type(sink) == "table" or type(sink) == "userdata" then
    local ok, m = pcall(function() return sink.write end)
    has_write = ok and m ~= nil
  end
  if not has_write then
    error("sfreports.writers: sink must be a function or have a :write method, got " .. type(sink), 3)
  end
  return function(chunk)
    local ok, err = sink:write(chunk)
    if ok == false or (ok == nil and err ~= nil) then return nil, err or "sink failed" end
    return true
  end
end

local function column_list(list)
  local out = {}
  if type(list) ~= "table" then return out end
  for i = 1, #list do
    local c = list[i]
    if type(c) == "string" then
      out[i] = { name = c, label = c }
    elseif type(c) == "table" then
      local label = c.label
      if type(label) ~= "string" then label = c.name end
      out[i] = { name = type(c.name) == "string" and c.name or nil,
                 label = type(label) == "string" and label or ("Column " .. i),
                 data_type = type(c.data_type) == "string" and c.data_type or nil }
    else
      out[i] = { label = "Column " .. i }
    end
  end
  return out
end

-- { columns, grouping_columns, blocks } from a report or a plain description.
local function shape_of(src)
  if type(src) ~= "table" then
    error("sfreports.writers: header needs a report or { columns = ... }, got " .. type(src), 3)
  end
  if type(src.columns) == "function" then
    local gcols = type(src.grouping_columns) == "function" and src:grouping_columns() or EMPTY
    local blocks = src.format == "MULTI_BLOCK"
    if not blocks and type(src.blocks) == "function" then blocks = #src:blocks() > 0 end
    return column_list(src:columns()), column_list(gcols), blocks
  end
  return column_list(src.columns), column_list(src.grouping_columns), src.blocks == true
end

---------------------------------------------------------------------------------------
-- row formatters (one closure per writer; the per-cell loops are the hot path)

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

-- money[i]: column i is a currency column, whose value objects may hold a null amount.
local function money_columns(columns)
  local money = {}
  for i = 1, #columns do money[i] = columns[i].data_type == "currency" end
  return money
end

local function delimited_formatter(sep, escape, raw, guard, columns, gcols, blocks)
  local ncols = #columns
  local money = money_columns(columns)
  local ngroups = #gcols
  local buf = {}
  local prefixes = setmetatable({}, { __mode = "k" })
  local specials = sep == "," and CSV_CHARS or TSV_CHARS
  local escape_hit = sep == "," and csv_quote or tsv_escape
  local marks, firsts, stamp = {}, {}, 0

  local function field(c)
    local s, isnum = field_text(c, raw)
    if guard and not isnum then s = guarded(s) end
    return escape(s)
  end

  -- Label mode, the common case: labels are strings, so no type() per cell. A label of
  -- any other type (never seen from Salesforce) makes concat or # raise; the caller then
  -- redoes the row with field(), which agrees with this loop on numbers, nil and null.
  local function fill_labels(cells)
    for i = 1, ncols do
      local c = cells[i]
      local s = ""
      if c ~= nil then
        local v = c.value
        if v ~= null then
          s = c.label
          if money[i] and type(v) == "table" and v.amount == null then
            s = ""
          elseif s == nil or s == null then
            if v == nil then
              s = ""
            else
              local isnum
              s, isnum = value_text(v)
              if guard and not isnum then s = guarded(s) end
            end
          elseif guard then
            s = guarded(s)
          end
        end
      end
      buf[i] = s
    end
    stamp = stamp + 1
    escape_fields(buf, ncols, specials, escape_hit, marks, firsts, stamp)
  end

  -- The grouping fields of a row, joined (no trailing separator); cached per groups
  -- table, which all rows of one fact-map entry share.
  local function prefix_of(groups)
    local p = prefixes[groups]
    if p == nil then
      local parts = {}
      for i = 1, ngroups do parts[i] = field(groups[i]) end
      p = concat(parts, sep)
      prefixes[groups] = p
    end
    return p
  end

  -- The line is concat(buf, sep, first, ncols): buf[0] holds the block and grouping
  -- fields when there are any, and the last field carries the line end, so each row
  -- builds one line string.
  local first = (ngroups > 0 or blocks) and 0 or 1
  local last = ncols
  if last < first then
    last = first
    buf[first] = ""
  end

  return function(row)
    local cells = row.data_cells or row.cells or EMPTY
    if first == 0 then
      local prefix = ngroups > 0 and prefix_of(row.groups or EMPTY) or nil
      if blocks then
        local b = row.block
        b = escape(b ~= nil and tostring(b) or "")
        if prefix then prefix = b .. sep .. prefix else prefix = b end
      end
      buf[0] = prefix
    end
    local slots = row.slots
    if slots == nil then
      if raw then
        for i = 1, ncols do
          local c = cells[i]
          local s = ""
          if c ~= nil then
            local v = c.value
            if v ~= null and v ~= nil then
              local tv = type(v)
              if tv == "table" then
                local a = v.amount -- currency: its amount
                if a ~= nil then v, tv = a, type(a) end
              end
              if tv == "string" then
                if guard then s = guarded(v) else s = v end
              elseif tv == "number" then
                if v == floor(v) and v > -9007199254740992 and v < 9007199254740992 then
                  s = format("%d", v)
                else
                  s = fmt_number(v)
                end
              elseif v ~= null then
                local isnum
                s, isnum = value_text(v)
                if guard and not isnum then s = guarded(s) end
              end
            end
          end
          buf[i] = s
        end
        stamp = stamp + 1
        escape_fields(buf, ncols, specials, escape_hit, marks, firsts, stamp)
      elseif not pcall(fill_labels, cells) then
        -- a label that is neither a string, a number, nil nor null: check every field
        for i = 1, ncols do buf[i] = field(cells[i]) end
      end
    else
      for i = 1, ncols do buf[i] = "" end
      for i = 1, #cells do
        local j = slots[i]
        if j and j <= ncols then buf[j] = field(cells[i]) end
      end
    end
    local tail = buf[last]
    buf[last] = tail .. "\n"
    local line = concat(buf, sep, first, last)
    buf[last] = tail
    return line
  end, function(labels)
    local out = {}
    for i = 1, #labels do
      local s = labels[i]
      if guard then s = guarded(s) end
      out[i] = escape(s)
    end
    return concat(out, sep) .. "\n"
  end
end

-- Unique JSON keys: column name (or label), "_2", "_3", ... on repeats.
local function json_keys(names)
  local used, out = {}, {}
  for i = 1, #names do
    local k = names[i]
    if used[k] then
      local n = 2
      while used[k .. "_" .. n] do n = n + 1 end
      k = k .. "_" .. n
    end
    used[k] = true
    out[i] = json_string(k) .. ":"
  end
  return out
end

-- array = true: rows are array elements (a row starts with "\n" or ",\n");
-- array = false: JSON Lines (a row ends with "\n").
local function json_formatter(raw, columns, gcols, blocks, array)
  local names = {}
  if blocks then names[1] = "block" end
  for i = 1, #gcols do names[#names + 1] = gcols[i].name or gcols[i].label end
  for i = 1, #columns do names[#names + 1] = columns[i].name or columns[i].label end
  local keys = json_keys(names)
  local koff = blocks and 1 or 0
  local ncols, ngroups = #columns, #gcols
  local money = money_columns(columns)
  local gkeys, ckeys = {}, {}
  for i = 1, ngroups do gkeys[i] = keys[koff + i] end
  for i = 1, ncols do ckeys[i] = keys[koff + ngroups + i] end
  local block_key = blocks and keys[1]
  local head_has_fields = blocks or ngroups > 0

  -- Key pieces carry the punctuation around them, so that a string value goes into the
  -- row unquoted and no per-cell string is built: piece[i][v] for v = (previous value
  -- was an open string: 2 or 0) + (this value is a string: 1 or 0).
  local piece = {}
  for i = 1, ncols do
    local sep = (i > 1 or head_has_fields) and "," or ""
    piece[i] = { [0] = sep .. ckeys[i], [1] = sep .. ckeys[i] .. '"',
                 [2] = '"' .. sep .. ckeys[i], [3] = '"' .. sep .. ckeys[i] .. '"' }
  end

  local out, sv, svat = {}, {}, {}
  local lead = "\n" -- before the first array element; ",\n" before the others
  local close, close_str = "}", '"}'
  if not array then close, close_str = "}\n", '"}\n' end
  local heads = setmetatable({}, { __mode = "k" })

  local function head_of(groups)
    local p = heads[groups]
    if p == nil then
      local parts = {}
      for i = 1, ngroups do parts[i] = gkeys[i] .. json_field(groups[i], raw) end
      p = "{" .. concat(parts, ",")
      heads[groups] = p
    end
    return p
  end

  return function(row)
    local cells = row.data_cells or row.cells or EMPTY
    local head = ngroups > 0 and head_of(row.groups or EMPTY) or "{"
    if blocks then
      local b = row.block
      head = "{" .. block_key .. (b ~= nil and json_string(tostring(b)) or "null")
        .. (ngroups > 0 and ("," .. head:sub(2)) or "")
    end
    local slots = row.slots
    if slots ~= nil then
      local parts, n = {}, 0
      for i = 1, #cells do
        local j = slots[i]
        if j and j <= ncols then
          n = n + 1
          parts[n] = ckeys[j] .. json_field(cells[i], raw)
        end
      end
      local line
      if n == 0 then
        line = head .. "}"
      else
        line = head .. (head_has_fields and "," or "") .. concat(parts, ",", 1, n) .. "}"
      end
      if array then
        line = lead .. line
        lead = ",\n"
        return line
      end
      return line .. "\n"
    end
    out[1] = head
    local k, m, open = 1, 0, 0
    for i = 1, ncols do
      local c = cells[i]
      local enc, str = "null", 0
      if c ~= nil then
        local v = c.value
        if v ~= null then
          if raw then
            if type(v) == "string" then enc, str = v, 1 elseif v ~= nil then enc = json_value(v) end
          else
            local l = c.label
            if money[i] and type(v) == "table" and v.amount == null then
              enc = "null"
            elseif type(l) == "string" then
              enc, str = l, 1
            elseif v ~= nil then
              enc = json_value(v)
            end
          end
        end
      end
      out[k + 1] = piece[i][open + str]
      out[k + 2] = enc
      k = k + 2
      if str == 1 then
        m = m + 1
        sv[m], svat[m] = enc, k
        open = 2
      else
        open = 0
      end
    end
    out[k + 1] = open == 2 and close_str or close
    if m > 0 then
      -- does any string value need escaping? One C call over the joined values decides.
      local joined = concat(sv, "", 1, m)
      local e = cjson_encode(joined)
      if #e ~= #joined + 2 then
        if find(e, "\\/", 1, true) then e = gsub(e, "\\/", "/") end
        if #e ~= #joined + 2 then
          for j = 1, m do
            local s = sv[j]
            if find(s, JSON_SPECIAL) then out[svat[j]] = gsub(s, JSON_SPECIAL, JSON_MAP) end
          end
        end
      end
    end
    if array then
      out[0] = lead
      lead = ",\n"
      return concat(out, "", 0, k + 1)
    end
    return concat(out, "", 1, k + 1)
  end
end

---------------------------------------------------------------------------------------
-- the writer object

local FORMATS = { csv = "csv", tsv = "tsv", json = "json", jsonl = "jsonl", ndjson = "jsonl" }
local OPTIONS = { raw = true, formula_guard = true, header = true, columns = true, grouping_columns = true }

local Writer = {}
Writer.__index = Writer

-- Creates a writer: format "csv" | "tsv" | "json" | "jsonl" (alias "ndjson").
function writers.new(fmt, sink, opts)
  local kind = FORMATS[fmt]
  if not kind then error("sfreports.writers: unknown format " .. tostring(fmt), 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("sfreports.writers: opts must be a table, got " .. type(opts), 2)
  end
  opts = opts or EMPTY
  for k in pairs(opts) do
    if not OPTIONS[k] then error("sfreports.writers: unknown option " .. tostring(k), 2) end
  end
  return setmetatable({
    kind = kind, write = make_write(sink), raw = opts.raw and true or false,
    guard = opts.formula_guard and true or false, header_line = opts.header ~= false,
    count = 0, state = "new",
  }, Writer)
end

local function fail(self, err)
  self.err = err
  self.state = "failed"
  return nil, err
end

-- Fixes the shape from a report or { columns =, grouping_columns = [, blocks = true] }
-- and writes what comes before the rows. Returns true, or nil and the sink's error.
function Writer:header(src)
  if self.state == "failed" then return nil, self.err end
  if self.state ~= "new" then error("sfreports.writers: header() called twice", 2) end
  local columns, gcols, blocks = shape_of(src)
  self.columns, self.grouping_columns, self.blocks = columns, gcols, blocks
  self.state = "rows"
  local kind = self.kind
  local chunk
  if kind == "csv" or kind == "tsv" then
    local sep, escape = ",", csv_escape
    if kind == "tsv" then sep, escape = "\t", tsv_escape end
    local headline
    self.format_row, headline = delimited_formatter(sep, escape, self.raw, self.guard, columns, gcols, blocks)
    if self.header_line then
      local labels = {}
      if blocks then labels[1] = "Block" end
      for i = 1, #gcols do labels[#labels + 1] = gcols[i].label end
      for i = 1, #columns do labels[#labels + 1] = columns[i].label end
      chunk = headline(labels)
    end
  else
    self.format_row = json_formatter(self.raw, columns, gcols, blocks, kind == "json")
    if kind == "json" then chunk = "[" end
  end
  if chunk then
    local ok, err = self.write(chunk)
    if not ok then return fail(self, err) end
  end
  return true
end

-- Formats and writes one row. Returns true, or nil and the sink's error.
function Writer:row(row)
  local state = self.state
  if state ~= "rows" then
    if state == "failed" then return nil, self.err end
    error("sfreports.writers: row() " .. (state == "new" and "before header()" or "after finish()"), 2)
  end
  local ok, err = self.write(self.format_row(row))
  if not ok then return fail(self, err) end
  self.count = self.count + 1
  return true
end

-- Writes every row of an iterator. Returns the number written, or nil and an error.
function Writer:rows(iter, state, init)
  local st = self.state
  if st ~= "rows" then
    if st == "failed" then return nil, self.err end
    error("sfreports.writers: rows() " .. (st == "new" and "before header()" or "after finish()"), 2)
  end
  local format_row, write = self.format_row, self.write
  local n = 0
  for row in iter, state, init do
    local ok, err = write(format_row(row))
    if not ok then
      self.count = self.count + n
      return fail(self, err)
    end
    n = n + 1
  end
  self.count = self.count + n
  return n
end

-- Writes what comes after the rows. Returns the number of rows written, or nil, err.
function Writer:finish()
  local state = self.state
  if state == "failed" then return nil, self.err end
  if state == "done" then error("sfreports.writers: finish() called twice", 2) end
  if state == "new" then error("sfreports.writers: finish() before header()", 2) end
  self.state = "done"
  if self.kind == "json" then
    local ok, err = self.write(self.count == 0 and "]\n" or "\n]\n")
    if not ok then return fail(self, err) end
  end
  return self.count
end

-- Writes a whole source (a report, or an iterator with opts.columns) in one format.
-- Returns the number of rows written, or nil and the sink's error.
function writers.write(fmt, src, sink, opts)
  local w = writers.new(fmt, sink, opts)
  local iter
  if type(src) == "function" then
    if not (opts and opts.columns) then
      error("sfreports.writers: a row iterator needs opts.columns", 2)
    end
    iter = src
    src = { columns = opts.columns, grouping_columns = opts.grouping_columns }
  elseif type(src) == "table" and type(src.rows) == "function" then
    iter = src:rows()
  else
    error("sfreports.writers: expected a report or a row iterator, got " .. type(src), 2)
  end
  local ok, err = w:header(src)
  if not ok then return nil, err end
  ok, err = w:rows(iter)
  if not ok then return nil, err end
  return w:finish()
end

for name in pairs(FORMATS) do
  writers[name] = function(src, sink, opts) return writers.write(name, src, sink, opts) end
end

return writers
