-- sfreports.logic: report filter logic (reportBooleanFilter): parsing, checking against
-- the number of filters, canonical rendering, renumbering and ANDing two logics.
--
--   local logic = require "sfreports.logic"
--   local ast, why = logic.check("1 and (2 or not 3)", 3, "the filter logic")
--   logic.render(ast)   --> "1 AND (2 OR NOT 3)"
--
-- AST: { tag = "ref", n } | { tag = "and"|"or", items } | { tag = "not", item }.
-- Notes on what Salesforce accepts (salesforce-analytics-api.md §6.6, §7):
-- * reportBooleanFilter numbers filters from 1; null means "all ANDed". Salesforce wants
--   parentheses wherever AND and OR meet, so they are always emitted there (and nowhere else).
-- * NOT in reportBooleanFilter is UNCONFIRMED for the API (it is standard in the report
--   builder); it is emitted as "NOT 1" / "NOT (1 OR 2)".
local args = require "sfreports.filters.args"
local json = require "sfreports.json"

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local concat, sort = table.concat, table.sort
local format, sub, upper, lower, find, match =
  string.format, string.sub, string.upper, string.lower, string.find, string.match

local misuse, quote, invalid = args.misuse, args.quote, args.invalid
local NULL = json.null
args.own_file()

local logic = {}

-- Flattens nested AND/OR of the same kind, removes double negations and one-item groups.
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
logic.normalize = normalize

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
logic.render = render

-- True when the AST is one filter or an AND of filters (so no logic string is needed).
local function is_conjunction(node)
  if node.tag == "ref" then return true end
  if node.tag ~= "and" then return false end
  for _, child in ipairs(node.items) do
    if child.tag ~= "ref" then return false end
  end
  return true
end
logic.is_conjunction = is_conjunction

-- The AST with every filter number moved up by `offset`.
local function shift(node, offset)
  if node.tag == "ref" then return { tag = "ref", n = node.n + offset } end
  if node.tag == "not" then return { tag = "not", item = shift(node.item, offset) } end
  local items = {}
  for i, child in ipairs(node.items) do items[i] = shift(child, offset) end
  return { tag = node.tag, items = items }
end

-- "first AND ... AND last" (one ref when first == last).
local function and_of(first, last)
  if first == last then return { tag = "ref", n = first } end
  local items = {}
  for i = first, last do items[#items + 1] = { tag = "ref", n = i } end
  return { tag = "and", items = items }
end
logic.and_of = and_of

-- Splits a logic string into tokens ({ kind = "num", n = }, "(", ")", "AND", "OR", "NOT";
-- operators in any case), each with its position. Returns the list, or nil and a sentence.
local function tokenize(s)
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
local function parse(s)
  local tokens, token_err = tokenize(s)
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
logic.parse = parse

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
local function check(text, count, what)
  local ast, err = parse(text)
  if not ast then
    return nil, format("%s %s is malformed: %s", what, quote(text), err)
  end
  local seen = collect_refs(ast, {})
  local refs = {}
  for k in pairs(seen) do refs[#refs + 1] = k end
  sort(refs)
  for _, k in ipairs(refs) do
    if k < 1 or k > count then
      return nil, format("%s %s references filter %d, but there %s only %d filter%s", what, quote(text), k,
        count == 1 and "is" or "are", count, count == 1 and "" or "s")
    end
  end
  for k = 1, count do
    if not seen[k] then
      return nil, format("filter %d is defined but not referenced in %s %s", k, what, quote(text))
    end
  end
  return normalize(ast)
end
logic.check = check

-- True for absent logic (nil, JSON null, or only blanks): every filter ANDed.
local function is_blank(text)
  return text == nil or text == NULL or (type(text) == "string" and not find(text, "%S"))
end
logic.is_blank = is_blank

-- Checks a logic string over `count` filters and returns it in canonical form ("(1 OR 2) AND 3":
-- upper-case operators, single spaces, minimal parentheses), or nil and an `invalid` error.
-- (Public as sfreports.filters.normalize_logic.)
function logic.normalize_logic(text, count)
  if type(text) ~= "string" then misuse("normalize_logic", "logic must be a string") end
  if type(count) ~= "number" then misuse("normalize_logic", "count must be a number") end
  local ast, msg = check(text, count, "the filter logic")
  if not ast then return nil, invalid(msg, { option = "logic" }) end
  return render(ast)
end

-- The AST without the filters `renumber` leaves out (renumber[old] = new number, nil when
-- dropped): an AND/OR keeps its other operands (a dropped condition counts as neutral), a
-- NOT goes with its operand. Nil when nothing is left.
local function without(node, renumber)
  if node.tag == "ref" then
    local k = renumber[node.n]
    return k and { tag = "ref", n = k }
  elseif node.tag == "not" then
    local item = without(node.item, renumber)
    return item and { tag = "not", item = item }
  end
  local items = {}
  for _, child in ipairs(node.items) do
    local c = without(child, renumber)
    if c then items[#items + 1] = c end
  end
  if #items == 0 then return nil end
  return { tag = node.tag, items = items }
end
logic.without = without

-- ---------------------------------------------------------------------------------------
-- Two sides ANDed: existing (saved) filters and logic, then new ones
-- ---------------------------------------------------------------------------------------

-- The AST of the saved side over its `ns` filters: the saved logic, or an AND of all when
-- it is blank; nil when there are no saved filters. Saved logic that does not parse is
-- kept verbatim (returned second); logic that parses but does not match the filters gives
-- nil, nil and a sentence (third).
function logic.saved_side(ns, saved_logic)
  if ns == 0 then return nil end
  if is_blank(saved_logic) then return and_of(1, ns) end
  local ast, msg = check(saved_logic, ns, "the report's saved filter logic")
  if ast then return ast end
  if parse(saved_logic) then
    return nil, nil, msg -- parses, but does not match the saved filters
  end
  return nil, saved_logic -- unparsable: keep it verbatim
end

-- The AST of the new side over its `nn` filters (nil when there are none), or nil and a
-- sentence.
function logic.new_side(nn, new_logic, what)
  if is_blank(new_logic) then
    if nn == 0 then return nil end
    return and_of(1, nn)
  end
  if nn == 0 then return nil, "filter logic " .. quote(new_logic) .. " was given without filters" end
  return check(new_logic, nn, what)
end

-- saved_ast: AST of the saved logic over 1..ns (nil when there are no saved filters);
-- saved_raw: the saved logic string when it could not be parsed (kept verbatim);
-- new_ast: AST over 1..nn (nil when there are no new filters).
-- Returns the logic value to send: a string, or json.null when everything is ANDed.
function logic.combine(saved_ast, saved_raw, ns, new_ast)
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

return logic
