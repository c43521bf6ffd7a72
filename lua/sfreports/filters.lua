-- sfreports.filters: filter builders, merging with a report's saved filters, and
-- validation of run-time report changes against the report's describe.
--
--   local F = require "sfreports.filters"
--   local expr = F.all{ F.eq("STAGE_NAME", {"Closed Won", "Closed Lost"}),
--                       F.any{ F.gt("AMOUNT", 1000), F.not_(F.eq("TYPE", "New Business")) } }
--   F.build(expr)        --> { reportFilters = {...}, reportBooleanFilter = "1 AND (2 OR NOT 3)" }
--   F.prepare(opts, describe) --> reportMetadata to POST | nil, err (kind "invalid")
--
-- Notes on what Salesforce accepts (salesforce-analytics-api.md §6.6, §7):
-- * Filter values are strings; several values are comma-separated in one string, and a value
--   that itself holds a comma is wrapped in double quotes. A plain string value is sent
--   verbatim (so "Closed Won,Closed Lost" keeps its documented meaning); pass a list to get
--   the quoting. How a literal `"` inside a quoted value is escaped is UNCONFIRMED; it is
--   doubled here, as in CSV.
-- * reportBooleanFilter numbers filters from 1; null means "all ANDed". Salesforce wants
--   parentheses wherever AND and OR meet, so they are always emitted there (and nowhere else).
-- * NOT in reportBooleanFilter is UNCONFIRMED for the API (it is standard in the report
--   builder). not_() emits "NOT 1" / "NOT (1 OR 2)"; prefer ne/not_contains/excludes when
--   they express what you mean.
-- * Lua dates: `os.time()` numbers and `{year=, month=, day=[, hour=, min=, sec=]}` tables
--   (local time, as for os.time). On a date column they become "YYYY-MM-DD" (local calendar
--   date); on a datetime column "YYYY-MM-DDTHH:MM:SSZ" (UTC) when a time is known. Without
--   describe (build) a plain number stays a number: wrap it in F.date()/F.datetime().
local json = require "sfreports.json"

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local setmetatable, getmetatable, select = setmetatable, getmetatable, select
local concat, sort = table.concat, table.sort
local floor, huge, min = math.floor, math.huge, math.min
local format, sub, upper, lower, find, match, gsub, byte =
  string.format, string.sub, string.upper, string.lower, string.find, string.match, string.gsub, string.byte

local NULL = json.null

local filters = {}

-- Run options handled by prepare(); the client may use this list for its option checks.
filters.OPTIONS = { "filters", "logic", "replace_filters", "date_filter", "sort", "top", "columns", "groupings" }

-- Salesforce accepts at most 20 field filters per run (salesforce-analytics-api.md §7.2, §8).
filters.MAX_FILTERS = 20
-- The API processes at most 100 columns per report (§8).
filters.MAX_COLUMNS = 100

-- The errors module needs the C core; load it only when an error is built.
local function invalid(msg, fields)
  return require("sfreports.errors").new("invalid", msg, fields)
end

local THIS_FILE = debug.getinfo(1, "S").source

-- Raises a string error for programmer misuse, positioned at the caller's code (the first
-- stack frame outside this file).
local function misuse(fname, msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info then
      level = 1
      break
    end
    -- (Lua 5.1 shows a tail call as a frame of its own: skip it too)
    if info.source ~= THIS_FILE and info.what ~= "tail" then break end
    level = level + 1
  end
  error("sfreports.filters." .. fname .. ": " .. msg, level)
end

local function is_null(v)
  return v == nil or v == NULL
end

local function quote(s)
  return "'" .. tostring(s) .. "'"
end

-- "a", "a or b", "a, b or c"
local function or_list(items)
  if #items <= 1 then return items[1] or "" end
  return concat(items, ", ", 1, #items - 1) .. " or " .. items[#items]
end

-- Walks a list, raising when it has holes or non-integer keys; returns its length.
local function list_length(t, fname, what)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k ~= floor(k) then
      misuse(fname, what .. " must be a list (found key " .. tostring(k) .. ")")
    end
    if k > n then n = k end
  end
  for i = 1, n do
    if t[i] == nil then misuse(fname, what .. " has a hole at index " .. i) end
  end
  return n
end

-- Raises when t has a key outside `allowed` (catches typos in option tables).
local function check_keys(t, allowed, fname, what)
  for k in pairs(t) do
    if not allowed[k] then
      misuse(fname, what .. " has an unknown key " .. quote(k))
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- Values
-- ---------------------------------------------------------------------------------------

local DateMark = {}
DateMark.__index = DateMark
DateMark.__tostring = function(d) return "sfreports.filters." .. d.kind .. "(" .. tostring(d.value) .. ")" end

local DATE_TYPES = { date = true, datetime = true }

local function check_int(t, key, lo, hi, fname, optional)
  local v = t[key]
  if v == nil and optional then return end
  if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
    misuse(fname, "date table field " .. key .. " must be an integer from " .. lo .. " to " .. hi
      .. ", got " .. tostring(v))
  end
end

local function check_date_table(t, fname)
  check_int(t, "year", 1, 9999, fname)
  check_int(t, "month", 1, 12, fname)
  check_int(t, "day", 1, 31, fname)
  check_int(t, "hour", 0, 23, fname, true)
  check_int(t, "min", 0, 59, fname, true)
  check_int(t, "sec", 0, 61, fname, true)
end

local function is_date_table(v)
  return type(v) == "table" and getmetatable(v) == nil and v.year ~= nil
end

local function check_number(v, fname)
  if v ~= v or v == huge or v == -huge then
    misuse(fname, "cannot use " .. (v ~= v and "NaN" or "an infinite number") .. " as a filter value")
  end
end

-- Raises unless v is a value a filter can hold; lists hold scalars or dates only.
local function check_value(v, fname, in_list)
  local tv = type(v)
  if tv == "string" or tv == "boolean" then return end
  if tv == "number" then return check_number(v, fname) end
  if tv == "table" then
    if getmetatable(v) == DateMark then return end
    if is_date_table(v) then return check_date_table(v, fname) end
    if getmetatable(v) == nil and not in_list then
      local n = list_length(v, fname, "a list of values")
      if n == 0 then misuse(fname, "a list of values must not be empty") end
      for i = 1, n do check_value(v[i], fname, true) end
      return
    end
  end
  if v == nil then
    misuse(fname, "value is missing (use \"\" to match a blank field)")
  end
  misuse(fname, "cannot use a " .. (v == NULL and "JSON null" or tv)
    .. (in_list and " inside a list of values" or " as a filter value"))
end

local number_string = json.number_text

-- A Lua date (number, table or mark) as "YYYY-MM-DD" or, with_time, "YYYY-MM-DDTHH:MM:SSZ".
-- Numbers are os.time values; tables are local calendar fields, as for os.time.
local function lua_date(v, with_time)
  if type(v) == "number" then
    local t = floor(v)
    if with_time then return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end
    return os.date("%Y-%m-%d", t)
  end
  if with_time and v.hour ~= nil then
    return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time(v))
  end
  return format("%04d-%02d-%02d", v.year, v.month, v.day)
end

local ISO_DATE = "^%d%d%d%d%-%d%d%-%d%d"

local function looks_like_date_value(s)
  if s == "" then return true end
  if find(s, ISO_DATE .. "$") then return true end
  if find(s, ISO_DATE .. "T%d%d:%d%d") then return true end
  -- relative date literals: TODAY, THIS_MONTH, LAST_N_DAYS:30, ...
  return find(s, "^[A-Z][A-Z0-9_]*$") ~= nil or find(s, "^[A-Z][A-Z0-9_]*:%d+$") ~= nil
end

-- Formats one value for column type dtype (nil when unknown). Returns the string, or nil and
-- a sentence when the value cannot be sent for that column.
local function format_scalar(v, col)
  local dtype = col and col.dataType
  local tv = type(v)
  if tv == "string" then
    if DATE_TYPES[dtype] and not looks_like_date_value(v) then
      return nil, "is not an ISO date (YYYY-MM-DD) or a date literal such as THIS_MONTH"
    end
    return v
  elseif tv == "boolean" then
    local want = v and "true" or "false"
    for _, fv in ipairs(col and col.filterValues or {}) do
      if type(fv) == "table" and type(fv.name) == "string" and lower(fv.name) == want then
        return fv.name
      end
    end
    return v and "True" or "False"
  elseif tv == "number" then
    if DATE_TYPES[dtype] then return lua_date(v, dtype == "datetime") end
    return number_string(v)
  elseif getmetatable(v) == DateMark then
    local with_time = v.kind == "datetime"
    if dtype == "date" then with_time = false end
    if type(v.value) == "string" then
      return with_time and v.value or sub(v.value, 1, 10)
    end
    return lua_date(v.value, with_time)
  else -- date table
    return lua_date(v, dtype ~= "date")
  end
end

local function format_value(v, col)
  if type(v) == "table" and getmetatable(v) == nil and not is_date_table(v) then
    local parts = {}
    for i, item in ipairs(v) do
      local s, err = format_scalar(item, col)
      if not s then return nil, err, item end
      if find(s, ",", 1, true) then
        s = '"' .. gsub(s, '"', '""') .. '"'
      end
      parts[i] = s
    end
    return concat(parts, ",")
  end
  local s, err = format_scalar(v, col)
  if not s then return nil, err, v end
  return s
end

-- Marks v (os.time number, date table or ISO string) as a date, so build() formats it as
-- "YYYY-MM-DD" even without describe.
function filters.date(v)
  if type(v) == "string" then
    if not find(v, ISO_DATE) then misuse("date", "expected an ISO date string, got " .. quote(v)) end
  elseif type(v) == "number" then
    check_number(v, "date")
  elseif is_date_table(v) then
    check_date_table(v, "date")
  else
    misuse("date", "expected an os.time number, a {year=, month=, day=} table or an ISO string, got "
      .. type(v))
  end
  return setmetatable({ kind = "date", value = v }, DateMark)
end

-- Like date(), but keeps the time of day on datetime columns ("YYYY-MM-DDTHH:MM:SSZ", UTC).
function filters.datetime(v)
  local d = filters.date(v)
  d.kind = "datetime"
  return d
end

-- ---------------------------------------------------------------------------------------
-- Expressions
-- ---------------------------------------------------------------------------------------

local Expr = {}
Expr.__index = Expr

local function is_expr(x)
  return getmetatable(x) == Expr
end

-- API operator names (salesforce-analytics-api.md §7.1).
local OPERATORS = {
  equals = true, notEqual = true, lessThan = true, greaterThan = true, lessOrEqual = true,
  greaterOrEqual = true, contains = true, notContain = true, startsWith = true,
  includes = true, excludes = true, within = true,
}

local function leaf(fname, column, operator, value)
  if type(column) ~= "string" or column == "" then
    misuse(fname, "column must be a non-empty string, got " .. (column == "" and "\"\"" or type(column)))
  end
  check_value(value, fname)
  return setmetatable({ tag = "filter", column = column, operator = operator, value = value }, Expr)
end

local CONSTRUCTORS = {
  eq = "equals", ne = "notEqual", lt = "lessThan", gt = "greaterThan", le = "lessOrEqual",
  ge = "greaterOrEqual", contains = "contains", not_contains = "notContain",
  starts_with = "startsWith", includes = "includes", excludes = "excludes",
}

for fname, operator in pairs(CONSTRUCTORS) do
  filters[fname] = function(column, value, ...)
    if select("#", ...) > 0 then misuse(fname, "takes (column, value)") end
    return leaf(fname, column, operator, value)
  end
end

-- A filter with an API operator name, for operators without a builder (e.g. "within").
function filters.filter(column, operator, value)
  if not OPERATORS[operator] then
    misuse("filter", "unknown operator " .. quote(operator) .. "; expected an API operator name such as equals")
  end
  return leaf("filter", column, operator, value)
end

-- Accepts builder expressions and API-shaped tables {column=, operator=, value=}.
local function as_expr(x, fname)
  if is_expr(x) then return x end
  if type(x) == "table" and getmetatable(x) == nil and x.operator ~= nil then
    check_keys(x, { column = true, operator = true, value = true, filterType = true, isRunPageEditable = true },
      fname, "a filter table")
    if x.filterType ~= nil and x.filterType ~= NULL and x.filterType ~= "fieldValue" then
      misuse(fname, "only fieldValue filters can be built, not " .. tostring(x.filterType))
    end
    return filters.filter(x.column, x.operator, x.value)
  end
  misuse(fname, "expected a filter expression (filters.eq, filters.all, ...), got "
    .. (type(x) == "table" and "a plain table" or type(x)))
end

local function compose(tag, fname, list)
  if type(list) ~= "table" or getmetatable(list) ~= nil then
    misuse(fname, "expects a list of filter expressions, e.g. " .. fname .. "{ f1, f2 }")
  end
  local n = list_length(list, fname, fname .. "{}")
  if n == 0 and tag == "or" then misuse(fname, "needs at least one filter expression") end
  local items = {}
  for i = 1, n do items[i] = as_expr(list[i], fname) end
  return setmetatable({ tag = tag, items = items }, Expr)
end

-- AND of the expressions. all{} (empty) means "no filter".
function filters.all(list) return compose("and", "all", list) end

-- OR of the expressions.
function filters.any(list) return compose("or", "any", list) end

-- Negation; see the note on NOT at the top of this file.
function filters.not_(x)
  return setmetatable({ tag = "not", item = as_expr(x, "not_") }, Expr)
end

-- ---------------------------------------------------------------------------------------
-- Boolean logic: AST { tag = "ref", n } | { tag = "and"|"or", items } | { tag = "not", item }
-- ---------------------------------------------------------------------------------------

local function normalize(node)
  if node.tag == "ref" then return node end
  if node.tag == "not" then
    local c = normalize(node.item)
    if c.tag == "not" then return c.item end
    return { tag = "not", item = c }
  end
  local items = {}
  for _, child in ipairs(node.items) do
    local c = normalize(child)
    if c.tag == node.tag then
      for _, cc in ipairs(c.items) do items[#items + 1] = cc end
    else
      items[#items + 1] = c
    end
  end
  if #items == 1 then return items[1] end
  return { tag = node.tag, items = items }
end

-- Minimal parentheses: only around an AND/OR group that sits inside another operator.
local function render(node, nested)
  if node.tag == "ref" then return tostring(node.n) end
  if node.tag == "not" then return "NOT " .. render(node.item, true) end
  local parts = {}
  for i, child in ipairs(node.items) do parts[i] = render(child, true) end
  local s = concat(parts, node.tag == "and" and " AND " or " OR ")
  if nested then return "(" .. s .. ")" end
  return s
end

-- True when the AST is one filter or an AND of filters (so no logic string is needed).
local function is_conjunction(node)
  if node.tag == "ref" then return true end
  if node.tag ~= "and" then return false end
  for _, child in ipairs(node.items) do
    if child.tag ~= "ref" then return false end
  end
  return true
end

local function shift(node, offset)
  if node.tag == "ref" then return { tag = "ref", n = node.n + offset } end
  if node.tag == "not" then return { tag = "not", item = shift(node.item, offset) } end
  local items = {}
  for i, child in ipairs(node.items) do items[i] = shift(child, offset) end
  return { tag = node.tag, items = items }
end

local function and_of(first, last)
  if first == last then return { tag = "ref", n = first } end
  local items = {}
  for i = first, last do items[#items + 1] = { tag = "ref", n = i } end
  return { tag = "and", items = items }
end

-- Splits a logic string into tokens ({ kind = "num", n = }, "(", ")", "AND", "OR", "NOT";
-- operators in any case), each with its position. Returns the list, or nil and a sentence.
local function tokenize_logic(s)
  local tokens, i, n = {}, 1, #s
  while i <= n do
    local c = sub(s, i, i)
    if find(c, "%s") then
      i = i + 1
    elseif c == "(" or c == ")" then
      tokens[#tokens + 1] = { kind = c, pos = i }
      i = i + 1
    elseif find(c, "%d") then
      local digits = match(s, "^%d+", i)
      tokens[#tokens + 1] = { kind = "num", n = tonumber(digits), pos = i }
      i = i + #digits
    elseif find(c, "%a") then
      local word = match(s, "^%a+", i)
      local w = upper(word)
      if w ~= "AND" and w ~= "OR" and w ~= "NOT" then
        return nil, "unexpected " .. quote(word) .. " at position " .. i
      end
      tokens[#tokens + 1] = { kind = w, pos = i }
      i = i + #word
    else
      return nil, "unexpected " .. quote(c) .. " at position " .. i
    end
  end
  return tokens
end

-- Parses "1 AND (2 OR NOT 3)". Returns the AST, or nil and a sentence.
local function parse_logic(s)
  local tokens, token_err = tokenize_logic(s)
  if not tokens then return nil, token_err end
  if #tokens == 0 then return nil, "it is empty" end

  local pos = 1
  local function peek() return tokens[pos] end
  local function where()
    local t = tokens[pos]
    return t and ("at position " .. t.pos) or "at the end"
  end
  local parse_expr

  local function parse_unary()
    local t = peek()
    if not t then return nil, "expected a filter number, NOT or '(' at the end" end
    if t.kind == "NOT" then
      pos = pos + 1
      local item, err = parse_unary()
      if not item then return nil, err end
      return { tag = "not", item = item }
    elseif t.kind == "num" then
      pos = pos + 1
      return { tag = "ref", n = t.n }
    elseif t.kind == "(" then
      pos = pos + 1
      local e, err = parse_expr()
      if not e then return nil, err end
      local close = peek()
      if not close or close.kind ~= ")" then return nil, "expected ')' " .. where() end
      pos = pos + 1
      return e
    end
    return nil, "expected a filter number, NOT or '(' " .. where()
  end

  function parse_expr()
    local first, err = parse_unary()
    if not first then return nil, err end
    local op, items = nil, { first }
    while peek() and (peek().kind == "AND" or peek().kind == "OR") do
      local t = peek()
      if op and t.kind ~= op then
        return nil, "it mixes AND and OR without parentheses (position " .. t.pos .. ")"
      end
      op = t.kind
      pos = pos + 1
      local item
      item, err = parse_unary()
      if not item then return nil, err end
      items[#items + 1] = item
    end
    if not op then return first end
    return { tag = lower(op), items = items }
  end

  local ast, err = parse_expr()
  if not ast then return nil, err end
  local extra = peek()
  if extra then
    return nil, "unexpected " .. quote(extra.kind == "num" and extra.n or extra.kind) .. " " .. where()
  end
  return ast
end

local function collect_refs(node, seen)
  if node.tag == "ref" then
    seen[node.n] = true
  elseif node.tag == "not" then
    collect_refs(node.item, seen)
  else
    for _, child in ipairs(node.items) do collect_refs(child, seen) end
  end
  return seen
end

-- Parses and checks logic over `count` filters. Returns the normalized AST, or nil and a
-- sentence. `what` names the logic in messages ("the filter logic", "the report's saved ...").
local function check_logic(logic, count, what)
  local ast, err = parse_logic(logic)
  if not ast then
    return nil, format("%s %s is malformed: %s", what, quote(logic), err)
  end
  local seen = collect_refs(ast, {})
  local refs = {}
  for k in pairs(seen) do refs[#refs + 1] = k end
  sort(refs)
  for _, k in ipairs(refs) do
    if k < 1 or k > count then
      return nil, format("%s %s references filter %d, but there %s only %d filter%s", what, quote(logic), k,
        count == 1 and "is" or "are", count, count == 1 and "" or "s")
    end
  end
  for k = 1, count do
    if not seen[k] then
      return nil, format("filter %d is defined but not referenced in %s %s", k, what, quote(logic))
    end
  end
  return normalize(ast)
end

local function blank_logic(logic)
  return is_null(logic) or (type(logic) == "string" and not find(logic, "%S"))
end

-- Checks a logic string over `count` filters and returns it in canonical form ("(1 OR 2) AND 3":
-- upper-case operators, single spaces, minimal parentheses), or nil and an `invalid` error.
function filters.normalize_logic(logic, count)
  if type(logic) ~= "string" then misuse("normalize_logic", "logic must be a string") end
  if type(count) ~= "number" then misuse("normalize_logic", "count must be a number") end
  local ast, msg = check_logic(logic, count, "the filter logic")
  if not ast then return nil, invalid(msg, { option = "logic" }) end
  return render(ast)
end

-- ---------------------------------------------------------------------------------------
-- Expression -> filters + AST
-- ---------------------------------------------------------------------------------------

-- Numbers the leaves of expr depth-first. Returns the list of leaves and the AST (nil when
-- there is no filter at all, e.g. all{}).
local function flatten(expr, fname)
  local leaves = {}
  local function walk(node, parent)
    if node.tag == "filter" then
      leaves[#leaves + 1] = node
      return { tag = "ref", n = #leaves }
    elseif node.tag == "not" then
      return { tag = "not", item = walk(node.item, "not_") } -- an empty all{} raises in walk
    end
    local items = {}
    for _, child in ipairs(node.items) do
      local c = walk(child, node.tag == "and" and "all" or "any")
      if c then items[#items + 1] = c end
    end
    if #items == 0 then
      if parent and parent ~= "all" then misuse(fname, "an empty all{} inside " .. parent .. "()") end
      return nil
    end
    return { tag = node.tag, items = items }
  end
  local ast = walk(expr, nil)
  return leaves, ast and normalize(ast)
end

-- Accepts an expression or a list of them (AND).
local function to_expr(x, fname)
  if is_expr(x) then return x end
  if type(x) == "table" and getmetatable(x) == nil then
    if x.operator ~= nil then return as_expr(x, fname) end
    return filters.all(x)
  end
  misuse(fname, "expected a filter expression or a list of them, got " .. type(x))
end

-- Builds `{ reportFilters = [...], reportBooleanFilter = "..." | nil }` from an expression
-- (or a list of expressions, ANDed), without describe: values are formatted from their Lua
-- types only. reportBooleanFilter is nil when every filter is ANDed.
function filters.build(expr)
  local leaves, ast = flatten(to_expr(expr, "build"), "build")
  local out = json.array()
  for i, f in ipairs(leaves) do
    out[i] = { column = f.column, operator = f.operator, value = (format_value(f.value, nil)) }
  end
  local logic
  if ast and not is_conjunction(ast) then logic = render(ast) end
  return { reportFilters = out, reportBooleanFilter = logic }
end

-- ---------------------------------------------------------------------------------------
-- Merging with saved filters
-- ---------------------------------------------------------------------------------------

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- saved_ast: AST of the saved logic over 1..ns (nil when there are no saved filters);
-- saved_raw: the saved logic string when it could not be parsed (kept verbatim);
-- new_ast: AST over 1..nn (nil when there are no new filters).
-- Returns the logic value to send: a string, or json.null when everything is ANDed.
local function combine(saved_ast, saved_raw, ns, new_ast)
  local parts = {}
  if saved_raw then
    parts[#parts + 1] = { raw = saved_raw }
  elseif saved_ast then
    parts[#parts + 1] = saved_ast
  end
  if new_ast then parts[#parts + 1] = shift(new_ast, ns) end
  if #parts == 0 then return NULL end
  if not saved_raw then
    local all_and = true
    for _, p in ipairs(parts) do
      if not is_conjunction(p) then all_and = false end
    end
    if all_and then return NULL end
  end
  if #parts == 1 then
    return parts[1].raw or render(parts[1])
  end
  -- each side keeps its own grouping: "(1 OR 2) AND (3 AND 4)"
  local strs = {}
  for i, p in ipairs(parts) do
    if p.raw then
      strs[i] = "(" .. p.raw .. ")"
    else
      strs[i] = render(p, true)
    end
  end
  return concat(strs, " AND ")
end

local function saved_side(saved_filters, saved_logic)
  local ns = #saved_filters
  if ns == 0 then return nil end
  if blank_logic(saved_logic) then return and_of(1, ns) end
  local ast, msg = check_logic(saved_logic, ns, "the report's saved filter logic")
  if ast then return ast end
  if parse_logic(saved_logic) then
    return nil, nil, msg -- parses, but does not match the saved filters
  end
  return nil, saved_logic -- unparsable: keep it verbatim
end

local function new_side(new_filters, new_logic, what)
  local nn = #new_filters
  if blank_logic(new_logic) then
    if nn == 0 then return nil end
    return and_of(1, nn)
  end
  if nn == 0 then return nil, "filter logic " .. quote(new_logic) .. " was given without filters" end
  return check_logic(new_logic, nn, what)
end

local function list_of_filters(t, fname, what)
  if is_null(t) then return {} end
  if type(t) ~= "table" then misuse(fname, what .. " must be a list of filters") end
  local n = list_length(t, fname, what)
  local out = {}
  for i = 1, n do out[i] = t[i] end
  return out
end

-- Merges new filters (with optional logic over 1..#new) onto existing ones (with optional
-- logic over 1..#existing): existing filters keep their numbers, new ones follow, and the
-- two logics are ANDed, each wrapped: "(1 OR 2) AND (3 AND 4)". Used to AND a page filter
-- onto the caller's filters.
-- Returns reportFilters (a JSON array) and the logic to send (a string, or json.null when
-- everything is ANDed), or nil and an `invalid` error.
function filters.merge(metadata_filters, metadata_logic, new_filters_list, new_logic)
  local saved = list_of_filters(metadata_filters, "merge", "metadata_filters")
  local new = list_of_filters(new_filters_list, "merge", "new_filters_list")
  if not blank_logic(metadata_logic) and type(metadata_logic) ~= "string" then
    misuse("merge", "metadata_logic must be a string, nil or json.null")
  end
  if not blank_logic(new_logic) and type(new_logic) ~= "string" then
    misuse("merge", "new_logic must be a string, nil or json.null")
  end
  local out = json.array()
  for _, f in ipairs(saved) do out[#out + 1] = copy(f) end
  for _, f in ipairs(new) do
    if is_expr(f) then
      if f.tag ~= "filter" then misuse("merge", "new_filters_list holds single filters only; use new_logic") end
      out[#out + 1] = { column = f.column, operator = f.operator, value = (format_value(f.value, nil)) }
    elseif type(f) == "table" then
      out[#out + 1] = copy(f)
    else
      misuse("merge", "new_filters_list must hold filter tables")
    end
  end
  if #out > filters.MAX_FILTERS then
    return nil, invalid(format("%d filters (%d existing + %d new); Salesforce accepts at most %d per run",
      #out, #saved, #new, filters.MAX_FILTERS), { option = "filters" })
  end
  local saved_ast, saved_raw, saved_err = saved_side(saved, metadata_logic)
  if saved_err then return nil, invalid(saved_err, { option = "logic" }) end
  local new_ast, err = new_side(new, new_logic, "the filter logic")
  if err then return nil, invalid(err, { option = "logic" }) end
  return out, combine(saved_ast, saved_raw, #saved, new_ast)
end

-- ---------------------------------------------------------------------------------------
-- Describe: column index, resolution, suggestions
-- ---------------------------------------------------------------------------------------

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  sort(keys)
  return keys
end

local function table_or_nil(v)
  if type(v) == "table" then return v end
  return nil
end

local index_cache = setmetatable({}, { __mode = "k" })

-- Columns of the report type (API name -> { name, label, dataType, filterable, filterValues }),
-- from reportTypeMetadata.categories[].columns, then reportExtendedMetadata.detailColumnInfo and
-- groupingColumnInfo. Cached per describe table (the client caches describe per report).
local function column_index(describe)
  local idx = index_cache[describe]
  if idx then return idx end
  idx = { cols = {}, order = {}, by_label = {}, by_lower = {} }
  local function add(name, info)
    if type(name) ~= "string" or type(info) ~= "table" then return end
    local c = idx.cols[name]
    if not c then
      c = { name = name }
      idx.cols[name] = c
      idx.order[#idx.order + 1] = name
    end
    if c.label == nil and type(info.label) == "string" then c.label = info.label end
    if c.dataType == nil and type(info.dataType) == "string" then c.dataType = lower(info.dataType) end
    if info.filterable == false then
      c.filterable = false
    elseif info.filterable == true and c.filterable == nil then
      c.filterable = true
    end
    if c.filterValues == nil and type(info.filterValues) == "table" and #info.filterValues > 0 then
      c.filterValues = info.filterValues
    end
  end
  local rtm = table_or_nil(describe.reportTypeMetadata) or {}
  local rem = table_or_nil(describe.reportExtendedMetadata) or {}
  for _, cat in ipairs(table_or_nil(rtm.categories) or {}) do
    local cols = type(cat) == "table" and table_or_nil(cat.columns)
    if cols then
      for _, name in ipairs(sorted_keys(cols)) do add(name, cols[name]) end
    end
  end
  for _, key in ipairs({ "detailColumnInfo", "groupingColumnInfo" }) do
    local info = table_or_nil(rem[key])
    if info then
      for _, name in ipairs(sorted_keys(info)) do add(name, info[name]) end
    end
  end
  local function push(map, key, name)
    local list = map[key]
    if not list then list = {}; map[key] = list end
    for _, existing in ipairs(list) do
      if existing == name then return end
    end
    list[#list + 1] = name
  end
  for _, name in ipairs(idx.order) do
    local c = idx.cols[name]
    push(idx.by_lower, lower(name), name)
    if c.label then
      push(idx.by_label, c.label, name)
      push(idx.by_lower, lower(c.label), name)
    end
  end
  index_cache[describe] = idx
  return idx
end

-- Edit distance counting a transposition of neighbours as one edit (optimal string alignment).
local function distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev2, prev = nil, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = byte(a, i)
    for j = 1, lb do
      local cb = byte(b, j)
      local d = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + ((ca == cb) and 0 or 1))
      if prev2 and j > 1 and ca == byte(b, j - 1) and byte(a, i - 1) == cb then
        d = min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
    end
    prev2, prev = prev, cur
  end
  return prev[lb]
end

-- Up to 3 of `candidates` ({ key=, names={...} }) close to `query`, best first: within a
-- few typos (about one per three characters, at most 3), then those containing the query.
local function close_matches(query, candidates)
  local q = lower(query)
  local limit = min(3, floor(#q * 0.3))
  if limit < 1 then limit = 1 end
  local scored = {}
  for _, cand in ipairs(candidates) do
    local best = huge
    for _, name in ipairs(cand.names) do
      local ln = lower(name)
      local d = distance(q, ln)
      if d > limit then
        d = (#q >= 3 and find(ln, q, 1, true)) and limit + 0.5 or huge
      end
      if d < best then best = d end
    end
    if best < huge then scored[#scored + 1] = { key = cand.key, d = best } end
  end
  sort(scored, function(x, y)
    if x.d ~= y.d then return x.d < y.d end
    return x.key < y.key
  end)
  local out = {}
  for i = 1, min(3, #scored) do out[i] = scored[i].key end
  return out
end

local function describe_column(c)
  if c.label and c.label ~= c.name then return quote(c.name) .. " (" .. c.label .. ")" end
  return quote(c.name)
end

-- Up to 3 columns whose API name or label is close to `name`.
local function suggest_columns(idx, name)
  local candidates = {}
  for _, api in ipairs(idx.order) do
    candidates[#candidates + 1] = { key = api, names = { api, idx.cols[api].label } }
  end
  local out = {}
  for i, api in ipairs(close_matches(name, candidates)) do out[i] = idx.cols[api] end
  return out
end

-- Resolves a column named by API name or label. Returns the column, or nil, a sentence and
-- the error fields. When describe lists no columns at all (e.g. metadata built by hand for
-- a query), names are taken as API names, with no type to check against.
local function resolve(idx, name, option)
  local c = idx.cols[name]
  if c then return c end
  if #idx.order == 0 then return { name = name } end
  local function pick(list, how)
    if #list == 1 then return idx.cols[list[1]] end
    local shown = {}
    for i, api in ipairs(list) do shown[i] = describe_column(idx.cols[api]) end
    return nil, format("column %s in %s is ambiguous: it is the %s of %s; use the API name",
      quote(name), option, how, or_list(shown)), { option = option, column = name, candidates = list }
  end
  local by_label = idx.by_label[name]
  if by_label then return pick(by_label, "label") end
  local by_lower = idx.by_lower[lower(name)]
  if by_lower then return pick(by_lower, "name or label") end
  local sugg = suggest_columns(idx, name)
  local names, shown = {}, {}
  for i, s in ipairs(sugg) do
    names[i] = s.name
    shown[i] = describe_column(s)
  end
  local msg = format("unknown column %s in %s", quote(name), option)
  if #shown > 0 then
    msg = msg .. "; did you mean " .. or_list(shown) .. "?"
  else
    msg = msg .. " (not a column of this report type)"
  end
  return nil, msg, { option = option, column = name, suggestions = names }
end

-- Resolves `name` (API name or label) against a describe response: returns the API name and
-- the column info { name, label, dataType, filterable, filterValues }, or nil and an error.
function filters.resolve_column(describe, name)
  if type(describe) ~= "table" then misuse("resolve_column", "describe must be a table") end
  if type(name) ~= "string" then misuse("resolve_column", "name must be a string") end
  local c, msg, fields = resolve(column_index(describe), name, "columns")
  if not c then return nil, invalid(msg, fields) end
  return c.name, c
end

-- ---------------------------------------------------------------------------------------
-- Validation of filters against describe
-- ---------------------------------------------------------------------------------------

-- Operators per data type when describe carries no dataTypeFilterOperatorMap entry
-- (GET /analytics/filteroperators, salesforce-analytics-api.md §7.1).
local COMPARE = { "equals", "notEqual", "lessThan", "greaterThan", "lessOrEqual", "greaterOrEqual" }
local TEXT = { "equals", "notEqual", "lessThan", "greaterThan", "lessOrEqual", "greaterOrEqual",
  "contains", "notContain", "startsWith" }
local BUILTIN_OPERATORS = {
  date = COMPARE, datetime = COMPARE, double = COMPARE, int = COMPARE, percent = COMPARE, currency = COMPARE,
  string = TEXT, picklist = TEXT, textarea = TEXT, url = TEXT, phone = TEXT, email = TEXT,
  reference = { "equals", "notEqual" }, boolean = { "equals", "notEqual" },
  id = { "equals", "notEqual", "startsWith" },
  multipicklist = { "equals", "notEqual", "includes", "excludes" },
}

local function allowed_operators(describe, dtype)
  if not dtype then return nil end
  local rtm = table_or_nil(describe.reportTypeMetadata)
  local map = rtm and table_or_nil(rtm.dataTypeFilterOperatorMap)
  local list = map and table_or_nil(map[dtype])
  if list then
    local names, seen = {}, {}
    for _, op in ipairs(list) do
      if type(op) == "table" and type(op.name) == "string" and not seen[op.name] then
        seen[op.name] = true
        names[#names + 1] = op.name
      end
    end
    return names
  end
  return BUILTIN_OPERATORS[dtype]
end

local function contains(list, v)
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end

-- Validates one builder leaf against describe and formats it. Returns the API filter table,
-- or nil, a sentence and the error fields.
local function prepare_leaf(describe, idx, f)
  local c, msg, fields = resolve(idx, f.column, "filters")
  if not c then return nil, msg, fields end
  if c.filterable == false then
    return nil, format("column %s is not filterable", describe_column(c)), { option = "filters", column = c.name }
  end
  local allowed = allowed_operators(describe, c.dataType)
  if allowed and not contains(allowed, f.operator) then
    return nil, format("operator %s is not allowed on column %s of type %s; allowed: %s", quote(f.operator),
      describe_column(c), c.dataType, #allowed > 0 and concat(allowed, ", ") or "none"),
      { option = "filters", column = c.name, operator = f.operator, allowed = allowed }
  end
  local value, err, bad = format_value(f.value, c)
  if not value then
    return nil, format("value %s for column %s %s", quote(bad), describe_column(c), err),
      { option = "filters", column = c.name }
  end
  return { column = c.name, operator = f.operator, value = value }
end

-- ---------------------------------------------------------------------------------------
-- prepare: run options -> reportMetadata
-- ---------------------------------------------------------------------------------------

-- True when opts hold any option that prepare() turns into report metadata (the client then
-- fetches, and caches, the report's describe).
function filters.needs_describe(opts)
  if opts == nil then return false end
  if type(opts) ~= "table" then misuse("needs_describe", "opts must be a table") end
  for _, name in ipairs(filters.OPTIONS) do
    if name == "replace_filters" then
      if opts[name] then return true end
    elseif opts[name] ~= nil then
      return true
    end
  end
  return false
end

-- replace_filters = { "COLUMN", ... }: drops the saved filters on those columns and
-- renumbers the saved logic. Returns the kept filters and their logic (string or nil), or
-- nil, a sentence and fields.
local function drop_saved(idx, saved, saved_logic, columns)
  local drop = {}
  local n = list_length(columns, "prepare", "replace_filters")
  for i = 1, n do
    local name = columns[i]
    if type(name) ~= "string" then misuse("prepare", "replace_filters must be true or a list of column names") end
    local api = name
    local found = false
    for _, f in ipairs(saved) do
      if f.column == name then found = true end
    end
    if not found then
      local c, msg, fields = resolve(idx, name, "replace_filters")
      if not c then return nil, nil, msg, fields end
      api = c.name
      for _, f in ipairs(saved) do
        if f.column == api then found = true end
      end
    end
    if not found then
      return nil, nil, format("replace_filters names column %s, but the report has no saved filter on it", quote(name)),
        { option = "replace_filters", column = name }
    end
    drop[api] = true
  end
  local kept, renumber = {}, {}
  for i, f in ipairs(saved) do
    if not drop[f.column] then
      kept[#kept + 1] = f
      renumber[i] = #kept
    end
  end
  if blank_logic(saved_logic) or #kept == 0 then return kept, nil end
  local ast, msg = check_logic(saved_logic, #saved, "the report's saved filter logic")
  if not ast then
    return nil, nil, "cannot drop saved filters: " .. msg, { option = "replace_filters" }
  end
  -- Remove the dropped references: an AND/OR keeps its other operands (a dropped condition
  -- counts as neutral), a NOT goes with its operand.
  local function prune(node)
    if node.tag == "ref" then
      local k = renumber[node.n]
      return k and { tag = "ref", n = k }
    elseif node.tag == "not" then
      local item = prune(node.item)
      return item and { tag = "not", item = item }
    end
    local items = {}
    for _, child in ipairs(node.items) do
      local c = prune(child)
      if c then items[#items + 1] = c end
    end
    if #items == 0 then return nil end
    return { tag = node.tag, items = items }
  end
  local pruned = prune(ast)
  if not pruned then return kept, nil end
  return kept, render(normalize(pruned))
end

local DURATION_FAMILIES = {
  LAST_N_DAYS = true, NEXT_N_DAYS = true, LAST_N_WEEKS = true, NEXT_N_WEEKS = true,
  LAST_N_MONTHS = true, NEXT_N_MONTHS = true, LAST_N_QUARTERS = true, NEXT_N_QUARTERS = true,
  LAST_N_YEARS = true, NEXT_N_YEARS = true, LAST_N_FISCAL_QUARTERS = true, NEXT_N_FISCAL_QUARTERS = true,
  LAST_N_FISCAL_YEARS = true, NEXT_N_FISCAL_YEARS = true, N_DAYS_AGO = true, N_WEEKS_AGO = true,
  N_MONTHS_AGO = true, N_QUARTERS_AGO = true, N_YEARS_AGO = true, N_FISCAL_QUARTERS_AGO = true,
  N_FISCAL_YEARS_AGO = true,
}

-- Values of reportTypeMetadata.standardDateFilterDurationGroups, plus the saved one.
local function offered_durations(describe, saved)
  local list, set = {}, {}
  local function add(v)
    if type(v) == "string" and not set[v] then
      set[v] = true
      list[#list + 1] = v
    end
  end
  local rtm = table_or_nil(describe.reportTypeMetadata) or {}
  for _, g in ipairs(table_or_nil(rtm.standardDateFilterDurationGroups) or {}) do
    for _, d in ipairs(type(g) == "table" and table_or_nil(g.standardDateFilterDurations) or {}) do
      if type(d) == "table" then add(d.value) end
    end
  end
  if #list == 0 then return nil end
  if saved then add(saved.durationValue) end
  add("CUSTOM")
  return list, set
end

local function range_date(v, key)
  if type(v) == "string" then
    if find(v, ISO_DATE) then return sub(v, 1, 10) end
    return nil, format("date_filter.%s %s is not an ISO date (YYYY-MM-DD)", key, quote(v))
  end
  if getmetatable(v) == DateMark then
    if type(v.value) == "string" then return sub(v.value, 1, 10) end
    return lua_date(v.value, false)
  end
  if type(v) == "number" then
    check_number(v, "prepare")
    return lua_date(v, false)
  end
  if is_date_table(v) then
    check_date_table(v, "prepare")
    return lua_date(v, false)
  end
  misuse("prepare", "date_filter." .. key .. " must be an os.time number, a date table or an ISO string")
end

-- The column a date_filter applies to: date_filter.column (resolved; it must be a date
-- column), else the saved standard date filter's. Returns its API name, or nil, a sentence
-- and fields.
local function date_filter_column(idx, saved, df)
  if df.column ~= nil then
    if type(df.column) ~= "string" then misuse("prepare", "date_filter.column must be a string") end
    local c, msg, fields = resolve(idx, df.column, "date_filter")
    if not c then return nil, msg, fields end
    if c.dataType and not DATE_TYPES[c.dataType] then
      return nil, format("date_filter column %s is a %s column, not a date", describe_column(c), c.dataType),
        { option = "date_filter", column = c.name }
    end
    return c.name
  elseif saved and type(saved.column) == "string" then
    return saved.column
  end
  return nil, "this report has no standard date filter column; name one with date_filter.column",
    { option = "date_filter" }
end

-- The duration a date_filter asks for, upper-cased: its duration, or "CUSTOM" when it gives
-- from/to dates. Raises when it gives neither, or both.
local function date_filter_duration(df)
  local duration = df.duration
  local custom = df.from ~= nil or df.to ~= nil
  if duration ~= nil then
    if type(duration) ~= "string" or duration == "" then
      misuse("prepare", "date_filter.duration must be a date literal string")
    end
    duration = upper(duration)
    if custom and duration ~= "CUSTOM" then
      misuse("prepare", "date_filter takes either duration or from/to, not both")
    end
    return duration
  elseif not custom then
    misuse("prepare", "date_filter needs a duration (e.g. THIS_FISCAL_QUARTER) or from/to dates")
  end
  return "CUSTOM"
end

-- A CUSTOM standardDateFilter from date_filter.from/to (a missing end stays open). Returns
-- it, or nil, a sentence and fields.
local function custom_date_filter(column, df)
  local from, to = NULL, NULL
  local err
  if df.from ~= nil then
    from, err = range_date(df.from, "from")
    if not from then return nil, err, { option = "date_filter" } end
  end
  if df.to ~= nil then
    to, err = range_date(df.to, "to")
    if not to then return nil, err, { option = "date_filter" } end
  end
  if from ~= NULL and to ~= NULL and from > to then
    return nil, format("date_filter starts on %s, after it ends on %s", from, to), { option = "date_filter" }
  end
  return { column = column, durationValue = "CUSTOM", startDate = from, endDate = to }
end

-- The message for a duration describe does not offer (`list`): close matches when there are
-- some, else the first dozen offered.
local function unoffered_duration_message(df, duration, list)
  local candidates = {}
  for i, v in ipairs(list) do candidates[i] = { key = v, names = { v } } end
  local shown = {}
  for i, v in ipairs(close_matches(duration, candidates)) do shown[i] = quote(v) end
  local msg = format("date filter %s is not offered by this report type", quote(df.duration or duration))
  if #shown > 0 then
    return msg .. "; did you mean " .. or_list(shown) .. "?"
  end
  local offered = {}
  for i = 1, min(12, #list) do offered[i] = list[i] end
  return msg .. "; offered: " .. concat(offered, ", ") .. (#list > 12 and ", ..." or "")
end

-- A standardDateFilter over a relative duration (THIS_FISCAL_QUARTER, LAST_N_DAYS:30),
-- checked against the durations describe offers. Returns it, or nil, a sentence and fields.
local function duration_date_filter(describe, saved, column, duration, df)
  local list, set = offered_durations(describe, saved)
  if not list then
    -- describe lists no durations: accept anything shaped like a date literal
    if not (find(duration, "^[A-Z][A-Z0-9_]*$") or find(duration, "^[A-Z][A-Z0-9_]*:%d+$")) then
      return nil, format("date filter %s is not a date literal", quote(df.duration or duration)),
        { option = "date_filter", duration = duration }
    end
    return { column = column, durationValue = duration, startDate = NULL, endDate = NULL }
  end
  -- Parametrised literals (LAST_N_DAYS:30) are not listed by describe; their acceptance by
  -- the Analytics API is UNCONFIRMED (salesforce-analytics-api.md §7.4).
  local family = match(duration, "^([A-Z_]+):%d+$")
  if not (set[duration] or (family and DURATION_FAMILIES[family])) then
    return nil, unoffered_duration_message(df, duration, list),
      { option = "date_filter", duration = duration, offered = list }
  end
  return { column = column, durationValue = duration, startDate = NULL, endDate = NULL }
end

-- date_filter: "THIS_FISCAL_QUARTER", {column=?, duration=} or {column=?, from=?, to=?}.
-- Returns the standardDateFilter to send, or nil, a sentence and fields.
local function prepare_date_filter(describe, idx, md, df)
  if type(df) == "string" then df = { duration = df } end
  if type(df) ~= "table" then misuse("prepare", "date_filter must be a date literal or a table") end
  check_keys(df, { column = true, duration = true, from = true, to = true }, "prepare", "date_filter")
  local saved = table_or_nil(md.standardDateFilter)
  local column, msg, fields = date_filter_column(idx, saved, df)
  if not column then return nil, msg, fields end
  local duration = date_filter_duration(df)
  if duration == "CUSTOM" then return custom_date_filter(column, df) end
  return duration_date_filter(describe, saved, column, duration, df)
end

local function sort_order(v, fname)
  if type(v) == "string" then
    local l = lower(v)
    if l == "asc" or l == "ascending" then return "asc" end
    if l == "desc" or l == "descending" then return "desc" end
  end
  misuse(fname, "sort order must be \"asc\" or \"desc\", got " .. quote(v))
end

local function is_order_word(v)
  if type(v) ~= "string" then return false end
  local l = lower(v)
  return l == "asc" or l == "desc" or l == "ascending" or l == "descending"
end

-- sort: "COL" | {"COL", "desc"} | {column=, order=} | a list of those.
local function sort_specs(s)
  local specs = {}
  local function one(x)
    if type(x) == "string" then
      specs[#specs + 1] = { column = x, order = "asc" }
    elseif type(x) == "table" and x.column ~= nil then
      check_keys(x, { column = true, order = true }, "prepare", "a sort table")
      if type(x.column) ~= "string" then misuse("prepare", "sort column must be a string") end
      specs[#specs + 1] = { column = x.column, order = x.order == nil and "asc" or sort_order(x.order, "prepare") }
    elseif type(x) == "table" and list_length(x, "prepare", "sort") == 2 and type(x[1]) == "string"
      and is_order_word(x[2]) then
      specs[#specs + 1] = { column = x[1], order = sort_order(x[2], "prepare") }
    else
      misuse("prepare", "sort must be \"COLUMN\", {\"COLUMN\", \"desc\"}, {column=, order=} or a list of those")
    end
  end
  if type(s) == "table" and s.column == nil and not (list_length(s, "prepare", "sort") == 2
    and type(s[1]) == "string" and is_order_word(s[2])) then
    local n = list_length(s, "prepare", "sort")
    if n == 0 then misuse("prepare", "sort must name at least one column") end
    for i = 1, n do one(s[i]) end
  else
    one(s)
  end
  return specs
end

local function top_rows(top)
  local rows, direction = top, "Asc"
  if type(top) == "table" then
    check_keys(top, { rows = true, direction = true }, "prepare", "top")
    rows = top.rows
    if top.direction ~= nil then
      direction = sort_order(top.direction, "prepare") == "asc" and "Asc" or "Desc"
    end
  end
  if type(rows) ~= "number" or rows ~= floor(rows) or rows < 1 then
    misuse("prepare", "top must be a positive integer or {rows=N, direction=\"Asc\"|\"Desc\"}")
  end
  return { rowLimit = rows, direction = direction }
end

local function copy_array(t)
  local out = json.array()
  for i, v in ipairs(table_or_nil(t) or {}) do
    out[i] = type(v) == "table" and copy(v) or v
  end
  return out
end

local MAX_GROUPINGS = { SUMMARY = 3, MATRIX = 2, TABULAR = 3 }

local function prepare_groupings(describe, idx, md, groupings, out)
  if type(groupings) ~= "table" then misuse("prepare", "groupings must be a list") end
  local n = list_length(groupings, "prepare", "groupings")
  local rtm = table_or_nil(describe.reportTypeMetadata) or {}
  local granularities
  for _, g in ipairs(table_or_nil(rtm.dateGranularityInfos) or {}) do
    if type(g) == "table" and type(g.value) == "string" then
      granularities = granularities or { None = true }
      granularities[g.value] = true
    end
  end
  local list = json.array()
  for i = 1, n do
    local g = groupings[i]
    if type(g) == "string" then g = { name = g } end
    if type(g) ~= "table" or type(g.name) ~= "string" then
      misuse("prepare", "each grouping must be a column name or {name=, sortOrder=, dateGranularity=}")
    end
    check_keys(g, { name = true, sortOrder = true, dateGranularity = true, sortAggregate = true },
      "prepare", "a grouping")
    local c, msg, fields = resolve(idx, g.name, "groupings")
    if not c then return nil, msg, fields end
    local gran = g.dateGranularity or "None"
    if type(gran) ~= "string" then misuse("prepare", "dateGranularity must be a string") end
    if granularities and not granularities[gran] then
      local offered = sorted_keys(granularities)
      return nil, format("date granularity %s is not offered by this report type; offered: %s", quote(gran),
        concat(offered, ", ")), { option = "groupings", column = c.name }
    end
    if gran ~= "None" and c.dataType and not DATE_TYPES[c.dataType] then
      return nil, format("date granularity %s needs a date column, but %s is a %s column", quote(gran),
        describe_column(c), c.dataType), { option = "groupings", column = c.name }
    end
    local aggregate = g.sortAggregate
    if aggregate ~= nil and type(aggregate) ~= "string" then misuse("prepare", "sortAggregate must be a string") end
    list[i] = {
      name = c.name,
      sortOrder = (g.sortOrder == nil or sort_order(g.sortOrder, "prepare") == "asc") and "Asc" or "Desc",
      dateGranularity = gran,
      sortAggregate = aggregate or NULL,
    }
  end
  local fmt = type(md.reportFormat) == "string" and md.reportFormat or nil
  local max = MAX_GROUPINGS[fmt] or 3
  if n > max then
    return nil, format("%d groupings given; a %s report has at most %d grouping levels", n,
      fmt == "MATRIX" and "MATRIX" or "SUMMARY", max), { option = "groupings" }
  end
  -- Salesforce refuses groupings on a tabular report ("Groupings are not supported on a tabular report").
  if fmt == "TABULAR" and n > 0 then out.reportFormat = "SUMMARY" end
  if fmt == "SUMMARY" and n == 0 then out.reportFormat = "TABULAR" end
  out.groupingsDown = list
  return true
end

local function prepare_columns(idx, columns)
  if type(columns) ~= "table" then misuse("prepare", "columns must be a list of column names") end
  local n = list_length(columns, "prepare", "columns")
  if n == 0 then misuse("prepare", "columns must name at least one column") end
  local out, seen = json.array(), {}
  for i = 1, n do
    if type(columns[i]) ~= "string" then misuse("prepare", "columns must be a list of column names") end
    local c, msg, fields = resolve(idx, columns[i], "columns")
    if not c then return nil, msg, fields end
    if seen[c.name] then
      return nil, format("column %s is listed twice in columns", describe_column(c)),
        { option = "columns", column = c.name }
    end
    seen[c.name] = true
    out[i] = c.name
  end
  if n > filters.MAX_COLUMNS then
    return nil, format("%d columns given; Salesforce processes at most %d", n, filters.MAX_COLUMNS),
      { option = "columns" }
  end
  return out
end

-- Raises unless prepare() was given an opts table and a describe response.
local function check_prepare_args(opts, describe)
  if type(opts) ~= "table" then misuse("prepare", "opts must be a table") end
  if type(describe) ~= "table" or type(describe.reportMetadata) ~= "table" then
    misuse("prepare", "describe must be the report's decoded describe response (with reportMetadata)")
  end
end

-- The saved filters and logic that replace_filters leaves: all of them (nil/false), none
-- (true), or those on other columns with the logic renumbered (a list of columns). Returns
-- the filters and the logic, or nil, nil and an `invalid` error.
local function saved_filters_after_replace(replace, idx, md)
  local saved = {}
  for i, f in ipairs(table_or_nil(md.reportFilters) or {}) do saved[i] = f end
  local saved_logic = md.reportBooleanFilter
  if replace == true then
    return {}, nil
  elseif type(replace) == "table" then
    local kept, logic, msg, fields = drop_saved(idx, saved, saved_logic, replace)
    if not kept then return nil, nil, invalid(msg, fields) end
    return kept, logic
  elseif replace ~= nil and replace ~= false then
    misuse("prepare", "replace_filters must be a boolean or a list of column names")
  end
  return saved, saved_logic
end

-- filters with logic: a plain list of single filters, numbered 1..n in order. Returns the
-- leaves and the AST of the logic (nil when there are no filters), or nil, nil and an
-- `invalid` error.
local function leaves_under_logic(list, logic)
  if type(logic) ~= "string" then misuse("prepare", "logic must be a string") end
  if is_expr(list) or type(list) ~= "table" or list.operator ~= nil then
    misuse("prepare", "with logic, filters must be a plain list of filters")
  end
  local leaves = {}
  for i = 1, list_length(list, "prepare", "filters") do
    local e = as_expr(list[i], "prepare")
    if e.tag ~= "filter" then
      misuse("prepare", "with logic, filters must be single filters, not all{}/any{}/not_()")
    end
    leaves[i] = e
  end
  if not blank_logic(logic) then
    local ast, msg = check_logic(logic, #leaves, "the filter logic")
    if not ast then return nil, nil, invalid(msg, { option = "logic" }) end
    return leaves, ast
  elseif #leaves > 0 then
    return leaves, and_of(1, #leaves)
  end
  return leaves, nil
end

-- The run's own filters (opts.filters, with opts.logic when given), checked against describe.
-- Returns them as API filter tables with the AST of their logic over 1..n (nil when there
-- are none), or nil, nil and an `invalid` error.
local function new_filters_from_opts(opts, describe, idx)
  if opts.filters == nil then
    if opts.logic ~= nil then misuse("prepare", "logic was given without filters") end
    return {}, nil
  end
  local leaves, ast, err
  if opts.logic ~= nil then
    leaves, ast, err = leaves_under_logic(opts.filters, opts.logic)
    if not leaves then return nil, nil, err end
  else
    leaves, ast = flatten(to_expr(opts.filters, "prepare"), "prepare")
  end
  local api_filters = {}
  for i, f in ipairs(leaves) do
    local api, msg, fields = prepare_leaf(describe, idx, f)
    if not api then return nil, nil, invalid(msg, fields) end
    api_filters[i] = api
  end
  return api_filters, ast
end

-- Sets out.reportFilters (the saved filters left by replace_filters, then the run's own) and
-- out.reportBooleanFilter (a string, or json.null when all are ANDed). Returns true, or nil
-- and an `invalid` error.
local function add_report_filters(out, opts, describe, idx, md)
  local saved, saved_logic, err = saved_filters_after_replace(opts.replace_filters, idx, md)
  if not saved then return nil, err end
  local new_filters, new_ast
  new_filters, new_ast, err = new_filters_from_opts(opts, describe, idx)
  if not new_filters then return nil, err end

  local total = #saved + #new_filters
  if total > filters.MAX_FILTERS then
    return nil, invalid(format("%d filters (%d saved + %d new); Salesforce accepts at most %d per run",
      total, #saved, #new_filters, filters.MAX_FILTERS), { option = "filters" })
  end

  local saved_ast, saved_raw, saved_err = saved_side(saved, saved_logic)
  if saved_err then return nil, invalid(saved_err, { option = "filters" }) end
  local report_filters = json.array()
  for _, f in ipairs(saved) do report_filters[#report_filters + 1] = copy(f) end
  for _, f in ipairs(new_filters) do report_filters[#report_filters + 1] = f end
  out.reportFilters = report_filters
  out.reportBooleanFilter = combine(saved_ast, saved_raw, #saved, new_ast)
  return true
end

-- Non-trending reports refuse snapshot dates (jsforce#34): send [] unless the type is historical.
local function snapshot_dates(describe, md)
  local rtm = table_or_nil(describe.reportTypeMetadata) or {}
  if rtm.isHistorical == true then
    return copy_array(md.historicalSnapshotDates)
  end
  return json.array()
end

-- Sets out.standardDateFilter: the date_filter option, else a copy of the saved one (none
-- when the report has none). Returns true, or nil and an `invalid` error.
local function add_standard_date_filter(out, date_filter, describe, idx, md)
  if date_filter ~= nil then
    local sdf, msg, fields = prepare_date_filter(describe, idx, md, date_filter)
    if not sdf then return nil, invalid(msg, fields) end
    out.standardDateFilter = sdf
  elseif type(md.standardDateFilter) == "table" then
    out.standardDateFilter = copy(md.standardDateFilter)
  end
  return true
end

-- sortBy for the sort option, columns resolved. Returns it, or nil and an `invalid` error.
local function sort_by_columns(sort_option, idx)
  local by = json.array()
  for i, s in ipairs(sort_specs(sort_option)) do
    local c, msg, fields = resolve(idx, s.column, "sort")
    if not c then return nil, invalid(msg, fields) end
    by[i] = { sortColumn = c.name, sortOrder = s.order }
  end
  return by
end

-- The sortBy that top rows rely on when the run sets no sort: a copy of the saved sort.
-- Returns it, or nil and an `invalid` error when the report has none.
local function saved_sort_for_top(md)
  local saved_sort = table_or_nil(md.sortBy)
  if not saved_sort or #saved_sort == 0 then
    return nil, invalid("top rows need a sort: pass sort (the report has no saved sort)", { option = "top" })
  end
  return copy_array(saved_sort)
end

-- Sets out.sortBy and out.topRows from the sort and top options. Returns true, or nil and an
-- `invalid` error.
local function add_sort_and_top(out, opts, idx, md)
  local err
  if opts.sort ~= nil then
    out.sortBy, err = sort_by_columns(opts.sort, idx)
    if not out.sortBy then return nil, err end
  end
  if opts.top ~= nil then
    out.topRows = top_rows(opts.top)
    if not out.sortBy then
      out.sortBy, err = saved_sort_for_top(md)
      if not out.sortBy then return nil, err end
    end
  end
  return true
end

-- Sets out.detailColumns and out.groupingsDown (and reportFormat) from the columns and
-- groupings options. Returns true, or nil and an `invalid` error.
local function add_columns_and_groupings(out, opts, describe, idx, md)
  if opts.columns ~= nil then
    local cols, msg, fields = prepare_columns(idx, opts.columns)
    if not cols then return nil, invalid(msg, fields) end
    out.detailColumns = cols
  end
  if opts.groupings ~= nil then
    local ok, msg, fields = prepare_groupings(describe, idx, md, opts.groupings, out)
    if not ok then return nil, invalid(msg, fields) end
  end
  return true
end

-- Turns run options into the reportMetadata to POST, checked against the report's describe.
-- Columns may be named by API name or label everywhere. Options (other keys are ignored:
-- they belong to the client):
--   filters          an expression, or a list of them (ANDed); added to the saved filters
--   logic            logic string over a plain list of filters (1-based), e.g. "1 OR (2 AND 3)"
--   replace_filters  true: drop the saved filters; or a list of columns: drop the saved filters
--                    on those columns only, renumbering the saved logic
--   date_filter      "THIS_FISCAL_QUARTER", {column=?, duration=}, or {column=?, from=?, to=?}
--                    (CUSTOM); the column defaults to the saved standardDateFilter column
--   sort             "COL", {"COL", "desc"}, {column=, order=}, or a list of those
--   top              N or {rows=N, direction="Asc"|"Desc"}; needs sort or a saved sort
--   columns          list of detail columns
--   groupings        list of "COL" or {name=, sortOrder=, dateGranularity=, sortAggregate=};
--                    on a TABULAR report this also sends reportFormat = "SUMMARY"
-- The result always carries reportFilters (saved + new, a JSON array), reportBooleanFilter
-- (a string, or json.null when all are ANDed), historicalSnapshotDates ([] unless the report
-- type is historical) and the saved standardDateFilter (or its override); sortBy, topRows,
-- detailColumns, groupingsDown (and reportFormat) only when changed.
-- Returns the table, or nil and an `invalid` error naming the problem.
function filters.prepare(opts, describe)
  check_prepare_args(opts, describe)
  local md = describe.reportMetadata
  local idx = column_index(describe)
  local out = {}
  local ok, err = add_report_filters(out, opts, describe, idx, md)
  if not ok then return nil, err end
  out.historicalSnapshotDates = snapshot_dates(describe, md)
  ok, err = add_standard_date_filter(out, opts.date_filter, describe, idx, md)
  if not ok then return nil, err end
  ok, err = add_sort_and_top(out, opts, idx, md)
  if not ok then return nil, err end
  ok, err = add_columns_and_groupings(out, opts, describe, idx, md)
  if not ok then return nil, err end
  return out
end

return filters
