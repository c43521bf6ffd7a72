-- fakeorg.filters: run-time report filters (reportFilters, reportBooleanFilter,
-- standardDateFilter) compiled into predicates over generated records.
-- Errors are returned as nil, { code = "BAD_REQUEST", message = ... }.
local util = require "fakeorg.util"
local data = require "fakeorg.data"
local dates = require "fakeorg.dates"

local lower, concat, find, sub = string.lower, table.concat, string.find, string.sub
local null = util.null

local filters = {}

filters.MAX_FILTERS = 20

local function bad(message)
  return nil, { code = "BAD_REQUEST", message = message }
end

local COMPARE = { "equals", "notEqual", "lessThan", "greaterThan", "lessOrEqual", "greaterOrEqual" }
local TEXT = { "contains", "notContain", "startsWith" }

local function list(...)
  local out = {}
  for _, l in ipairs({ ... }) do
    for _, v in ipairs(l) do out[#out + 1] = v end
  end
  return out
end

-- Operators per dataType, as GET /analytics/filteroperators lists them.
filters.OPERATORS = {
  date = COMPARE, datetime = COMPARE, double = COMPARE, int = COMPARE, percent = COMPARE,
  currency = COMPARE,
  string = list(COMPARE, TEXT), picklist = list(COMPARE, TEXT), textarea = list(COMPARE, TEXT),
  url = list(COMPARE, TEXT), phone = list(COMPARE, TEXT), email = list(COMPARE, TEXT),
  reference = { "equals", "notEqual" }, boolean = { "equals", "notEqual" },
  id = { "equals", "notEqual", "startsWith" },
  multipicklist = { "equals", "notEqual", "includes", "excludes" },
}

filters.OPERATOR_LABELS = {
  equals = "equals", notEqual = "not equal to", lessThan = "less than", greaterThan = "greater than",
  lessOrEqual = "less or equal", greaterOrEqual = "greater or equal", contains = "contains",
  notContain = "does not contain", startsWith = "starts with", includes = "includes",
  excludes = "excludes",
}

local function operator_allowed(data_type, op)
  for _, name in ipairs(filters.OPERATORS[data_type] or {}) do
    if name == op then return true end
  end
  return false
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- "a,\"b,c\",d" -> { "a", "b,c", "d" }; a doubled quote inside quotes is a literal quote.
function filters.split_values(s)
  local out, buf, quoted, i = {}, {}, false, 1
  while i <= #s do
    local c = sub(s, i, i)
    if c == '"' then
      if quoted and sub(s, i + 1, i + 1) == '"' then
        buf[#buf + 1] = '"'
        i = i + 1
      else
        quoted = not quoted
      end
    elseif c == "," and not quoted then
      out[#out + 1] = trim(concat(buf))
      buf = {}
    else
      buf[#buf + 1] = c
    end
    i = i + 1
  end
  out[#out + 1] = trim(concat(buf))
  return out
end

-- Per-kind value conversion: filter string -> comparable, or nil when invalid.
local function to_number(s)
  local cleaned = s:gsub("^USD", ""):gsub("[%$,%s%%]", "")
  return tonumber(cleaned)
end

local BOOL = { ["true"] = true, ["1"] = true, ["false"] = false, ["0"] = false }

-- Three-way comparison helpers: each returns -1/0/1 of cell vs operand.
local function cmp(a, b)
  if a < b then return -1 elseif a > b then return 1 end
  return 0
end

-- Builds test(raw, operand) -> -1/0/1 (or nil when the cell is null) plus operands.
local function numeric_operands(col, values)
  local ops = {}
  for i, v in ipairs(values) do
    if v == "" then ops[i] = null
    else
      local n = to_number(v)
      if not n then return bad(("The value '%s' isn't valid for %s (%s)."):format(v, col.name, col.dataType)) end
      ops[i] = n
    end
  end
  return ops
end

local function date_operands(col, values)
  local ops = {}
  for i, v in ipairs(values) do
    if v == "" then ops[i] = null
    else
      local s, e = dates.range(v)
      if not s then
        s = util.parse_iso(v)
        e = s
      end
      if not s then return bad(("The value '%s' isn't a valid date for %s."):format(v, col.name)) end
      ops[i] = { s, e }
    end
  end
  return ops
end

-- Compares a date (days) with a {start, end} range the way the operators read it.
local function date_test(op, x, r)
  if op == "equals" then return x >= r[1] and x <= r[2]
  elseif op == "notEqual" then return x < r[1] or x > r[2]
  elseif op == "lessThan" then return x < r[1]
  elseif op == "greaterThan" then return x > r[2]
  elseif op == "lessOrEqual" then return x <= r[2]
  elseif op == "greaterOrEqual" then return x >= r[1]
  end
end

local function scalar_test(op, c)
  if op == "equals" then return c == 0
  elseif op == "notEqual" then return c ~= 0
  elseif op == "lessThan" then return c < 0
  elseif op == "greaterThan" then return c > 0
  elseif op == "lessOrEqual" then return c <= 0
  elseif op == "greaterOrEqual" then return c >= 0
  end
end

local function has_part(cell, part)
  return find(";" .. cell .. ";", ";" .. part .. ";", 1, true) ~= nil
end

-- value in a multipicklist cell: "A;B" in includes means both A and B.
local function includes_all(cell, value)
  for part in value:gmatch("[^;]+") do
    if not has_part(cell, lower(trim(part))) then return false end
  end
  return true
end

-- Returns match(raw) -> bool for one operand (operand ~= null).
local function operand_matcher(col, op, operand)
  local kind = col.kind
  if data.is_numeric(col) then
    return function(raw) return raw ~= nil and scalar_test(op, cmp(raw, operand)) end
  elseif data.is_date(col) then
    return function(raw)
      return raw ~= nil and date_test(op, util.parse_iso(raw), operand)
    end
  elseif kind == "boolean" then
    return function(raw) return scalar_test(op, raw == operand and 0 or 1) end
  elseif kind == "id" then
    local want = sub(operand, 1, 15)
    if op == "startsWith" then
      return function(raw) return raw ~= nil and sub(raw, 1, #operand) == operand end
    end
    return function(raw) return scalar_test(op, raw ~= nil and sub(raw, 1, 15) == want and 0 or 1) end
  elseif kind == "multipicklist" and (op == "includes" or op == "excludes") then
    return function(raw) return raw ~= nil and includes_all(lower(raw), operand) end
  end
  -- text-like: name (label), string, picklist, textarea, multipicklist equality
  return function(raw)
    local text = data.raw_text(col, raw)
    if text == nil then return false end
    text = lower(text)
    if op == "contains" or op == "notContain" then return find(text, operand, 1, true) ~= nil end
    if op == "startsWith" then return sub(text, 1, #operand) == operand end
    return scalar_test(op, cmp(text, operand))
  end
end

local NEGATED = { notEqual = true, notContain = true, excludes = true }

local function text_operands(col, op, values)
  local ops = {}
  for _, v in ipairs(values) do
    if v == "" then
      if not (op == "contains" or op == "notContain" or op == "startsWith") or #values == 1 then
        ops[#ops + 1] = null
      end
    elseif col.kind == "boolean" then
      local b = BOOL[lower(v)]
      if b == nil then return bad(("The value '%s' isn't valid for %s (boolean)."):format(v, col.name)) end
      ops[#ops + 1] = b
    elseif col.kind == "id" then
      ops[#ops + 1] = v
    else
      ops[#ops + 1] = lower(v)
    end
  end
  return ops
end

local function operands_for(col, op, values)
  if data.is_numeric(col) then return numeric_operands(col, values) end
  if data.is_date(col) then return date_operands(col, values) end
  return text_operands(col, op, values)
end

-- Compiles one reportFilters entry into pred(record) -> bool.
function filters.compile(f, columns)
  if type(f) ~= "table" then return bad("A report filter must be an object.") end
  local col = columns[f.column]
  if type(f.column) ~= "string" or not col then
    return bad(("The column %s is not valid for this report type."):format(tostring(f.column)))
  end
  if not col.filterable then
    return bad("Some fields, including description and long text area fields, can't be included in filter logic.")
  end
  local op = f.operator
  if type(op) ~= "string" or not filters.OPERATOR_LABELS[op] then
    return bad(("The filter operator %s is not valid."):format(tostring(op)))
  end
  if not operator_allowed(col.dataType, op) then
    return bad(("The filter operator %s isn't valid for the column %s (%s)."):format(op, col.name, col.dataType))
  end
  if f.filterType == "fieldToField" then
    return bad("Field-to-field filters are not supported by the fake org.")
  end
  local value = f.value
  if value == nil or value == null then value = "" end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then return bad(("The filter value for %s must be a string."):format(col.name)) end
  local operands, err = operands_for(col, op, filters.split_values(value))
  if not operands then return nil, err end
  local matchers = {}
  for i, operand in ipairs(operands) do
    if operand == null then
      matchers[i] = function(raw)
        local text = data.raw_text(col, raw)
        return text == nil or text == ""
      end
    else
      matchers[i] = operand_matcher(col, NEGATED[op] and (op == "notEqual" and "equals" or op) or op, operand)
    end
  end
  local negate = NEGATED[op] == true
  local name = col.name
  return function(rec)
    local raw = rec[name]
    for i = 1, #matchers do
      if matchers[i](raw) then return not negate end
    end
    return negate
  end
end

-- Boolean filter logic: "(1 OR 2) AND NOT 3" -> eval(preds, rec) over 1-based indexes.
local function tokenize(s)
  local tokens, i = {}, 1
  s = s:upper()
  while i <= #s do
    local c = sub(s, i, i)
    if c:match("%s") then i = i + 1
    elseif c == "(" or c == ")" then tokens[#tokens + 1] = c; i = i + 1
    else
      local num = s:match("^%d+", i)
      local word = s:match("^%a+", i)
      if num then tokens[#tokens + 1] = tonumber(num); i = i + #num
      elseif word == "AND" or word == "OR" or word == "NOT" then tokens[#tokens + 1] = word; i = i + #word
      else return nil end
    end
  end
  return tokens
end

local function parse_logic(tokens)
  local pos, used = 1, {}
  local expr
  local function peek() return tokens[pos] end
  local function factor()
    local t = peek()
    if t == "NOT" then
      pos = pos + 1
      local inner = factor()
      if not inner then return nil end
      return { "not", inner }
    elseif t == "(" then
      pos = pos + 1
      local inner = expr()
      if not inner or peek() ~= ")" then return nil end
      pos = pos + 1
      return inner
    elseif type(t) == "number" then
      pos = pos + 1
      used[t] = true
      return { "ref", t }
    end
    return nil
  end
  local function chain(sub_parser, word)
    return function()
      local left = sub_parser()
      while left and peek() == word do
        pos = pos + 1
        local right = sub_parser()
        if not right then return nil end
        left = { word, left, right }
      end
      return left
    end
  end
  expr = chain(chain(factor, "AND"), "OR")
  local tree = expr()
  if not tree or pos <= #tokens then return nil end
  return tree, used
end

local function render(node, parent)
  local kind = node[1]
  if kind == "ref" then return tostring(node[2]) end
  if kind == "not" then return "NOT " .. render(node[2], "not") end
  local s = render(node[2], kind) .. " " .. kind .. " " .. render(node[3], kind)
  if parent and parent ~= kind then s = "(" .. s .. ")" end
  return s
end

local function evaluate(node, preds, rec)
  local kind = node[1]
  if kind == "ref" then return preds[node[2]](rec) end
  if kind == "not" then return not evaluate(node[2], preds, rec) end
  if kind == "AND" then return evaluate(node[2], preds, rec) and evaluate(node[3], preds, rec) end
  return evaluate(node[2], preds, rec) or evaluate(node[3], preds, rec)
end

-- Compiles reportFilters + reportBooleanFilter into pred(rec) and the normalized logic.
function filters.compile_all(report_filters, logic, columns)
  if report_filters == nil or report_filters == null then report_filters = {} end
  if type(report_filters) ~= "table" then return bad("reportFilters must be an array.") end
  if #report_filters > filters.MAX_FILTERS then
    return bad(("You can't use more than %d filters in a report run (got %d).")
      :format(filters.MAX_FILTERS, #report_filters))
  end
  local preds = {}
  for i, f in ipairs(report_filters) do
    local p, err = filters.compile(f, columns)
    if not p then return nil, err end
    preds[i] = p
  end
  if logic == nil or logic == null or logic == "" then
    return function(rec)
      for i = 1, #preds do
        if not preds[i](rec) then return false end
      end
      return true
    end, null
  end
  if type(logic) ~= "string" then return bad("reportBooleanFilter must be a string.") end
  local tokens = tokenize(logic)
  local tree, used
  if tokens then tree, used = parse_logic(tokens) end
  if not tree then return bad(("The filter logic is invalid: %s"):format(logic)) end
  for ref in pairs(used) do
    if not preds[ref] then
      return bad(("The filter logic references an undefined filter: %d."):format(ref))
    end
  end
  for i = 1, #preds do
    if not used[i] then
      return bad("Some filter conditions are defined but not referenced in your filter logic.")
    end
  end
  return function(rec) return evaluate(tree, preds, rec) end, render(tree)
end

-- standardDateFilter -> pred(rec) or nil (no restriction), plus the echoed object.
function filters.compile_date(sdf, columns)
  if sdf == nil or sdf == null then return nil, nil, null end
  if type(sdf) ~= "table" then return nil, bad("standardDateFilter must be an object.") end
  local col = columns[sdf.column]
  if not col or not data.is_date(col) then
    return nil, bad(("The column %s is not valid for the standard date filter."):format(tostring(sdf.column)))
  end
  local duration = sdf.durationValue
  if duration == nil or duration == null then duration = "CUSTOM" end
  local s, e
  if duration == "CUSTOM" then
    s, e = util.parse_iso(sdf.startDate), util.parse_iso(sdf.endDate)
    for _, v in ipairs({ sdf.startDate, sdf.endDate }) do
      if v ~= nil and v ~= null and not util.parse_iso(v) then
        return nil, bad(("The date %s in standardDateFilter is not valid (use YYYY-MM-DD)."):format(tostring(v)))
      end
    end
  else
    s, e = dates.range(duration)
    if not s then
      return nil, bad(("The standard date filter duration %s is not valid."):format(tostring(duration)))
    end
  end
  local echo = { column = col.name, durationValue = duration,
    startDate = s and util.iso(s) or null, endDate = e and util.iso(e) or null }
  if not s and not e then return nil, nil, echo end
  local name = col.name
  return function(rec)
    local x = util.parse_iso(rec[name])
    if not x then return false end
    return (not s or x >= s) and (not e or x <= e)
  end, nil, echo
end

return filters
