-- sfreports.writers.json_rows: the JSON and JSON Lines row formatter. When a header fixes
-- the shape, the keys are made unique and one formatter per column is chosen (label or
-- raw mode, currency or not); a row is the block and grouping fields followed by each
-- column's formatter applied to its cell. Pure Lua; the per-cell loop is the hot path.
local text = require "sfreports.writers.text"

local null = text.null
local type, tostring, setmetatable = type, tostring, setmetatable
local find, gsub = string.find, string.gsub
local concat = table.concat
local json_string, json_value, json_field = text.json_string, text.json_value, text.json_field
local JSON_SPECIAL, JSON_MAP = text.JSON_SPECIAL, text.JSON_MAP
local cjson_encode = require("cjson").encode

local json_rows = {}

local EMPTY = {}

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

---------------------------------------------------------------------------------------
-- one formatter per column: cell -> encoded text, 1 when that text is a string's raw
-- content (to be quoted and escaped by the row) or 0 when it is JSON already

local function label_formatter(money)
  return function(c)
    if c == nil then return "null", 0 end
    if type(c) ~= "table" then return json_value(c), 0 end -- a bare value
    local v = c.value
    if v == null then return "null", 0 end
    if money and type(v) == "table" and v.amount == null then return "null", 0 end
    local l = c.label
    if type(l) == "string" then return l, 1 end
    if v == nil then return "null", 0 end
    return json_value(v), 0
  end
end

local function raw_formatter(c)
  if c == nil then return "null", 0 end
  if type(c) ~= "table" then return json_value(c), 0 end
  local v = c.value
  if type(v) == "string" then return v, 1 end
  if v == nil or v == null then return "null", 0 end
  return json_value(v), 0
end

local function column_formatters(columns, raw)
  local fmts = {}
  for i = 1, #columns do
    fmts[i] = raw and raw_formatter or label_formatter(columns[i].data_type == "currency")
  end
  return fmts
end

-- array = true: rows are array elements (a row starts with "\n" or ",\n");
-- array = false: JSON Lines (a row ends with "\n"). Returns row -> text.
function json_rows.formatter(raw, columns, gcols, blocks, array)
  local names = {}
  if blocks then names[1] = "block" end
  for i = 1, #gcols do names[#names + 1] = gcols[i].name or gcols[i].label end
  for i = 1, #columns do names[#names + 1] = columns[i].name or columns[i].label end
  local keys = json_keys(names)
  local koff = blocks and 1 or 0
  local ncols, ngroups = #columns, #gcols
  local fmts = column_formatters(columns, raw)
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

  local function finish_line(line)
    if array then
      line = lead .. line
      lead = ",\n"
      return line
    end
    return line .. "\n"
  end

  -- MULTI_BLOCK rows: only the block's own fields.
  local function slotted(head, cells, slots)
    local parts, n = {}, 0
    for i = 1, #cells do
      local j = slots[i]
      if j and j <= ncols then
        n = n + 1
        local enc, str = fmts[j](cells[i])
        if str == 1 then enc = json_string(enc) end
        parts[n] = ckeys[j] .. enc
      end
    end
    if n == 0 then return finish_line(head .. "}") end
    return finish_line(head .. (head_has_fields and "," or "") .. concat(parts, ",", 1, n) .. "}")
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
    if slots ~= nil then return slotted(head, cells, slots) end
    out[1] = head
    local k, m, open = 1, 0, 0
    for i = 1, ncols do
      local enc, str = fmts[i](cells[i])
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

return json_rows
