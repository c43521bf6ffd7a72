-- sfreports.filters.expr: filter expressions (the DSL of sfreports.filters): one builder
-- per API operator, all{}/any{}/not_() to combine them, and their flattening into
-- numbered filters plus a logic AST (sfreports.logic).
--
--   local expr = F.all{ F.eq("STAGE_NAME", {"Closed Won", "Closed Lost"}),
--                       F.any{ F.gt("AMOUNT", 1000), F.not_(F.eq("TYPE", "New Business")) } }
--   F.build(expr) --> { reportFilters = {...}, reportBooleanFilter = "1 AND (2 OR NOT 3)" }
--
-- not_() emits "NOT 1" / "NOT (1 OR 2)", which is UNCONFIRMED for the API (see
-- sfreports.logic); prefer ne/not_contains/excludes when they express what you mean.
local args = require "sfreports.filters.args"
local values = require "sfreports.filters.values"
local logic = require "sfreports.logic"
local json = require "sfreports.json"

local type, pairs, ipairs, tostring, select = type, pairs, ipairs, tostring, select
local setmetatable, getmetatable = setmetatable, getmetatable

local misuse, quote, list_length, check_keys = args.misuse, args.quote, args.list_length, args.check_keys
local NULL = json.null
args.own_file()

local expr = {}

local Expr = {}
Expr.__index = Expr

local function is_expr(x)
  return getmetatable(x) == Expr
end
expr.is_expr = is_expr

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
  values.check_value(value, fname)
  return setmetatable({ tag = "filter", column = column, operator = operator, value = value }, Expr)
end

-- Builder name -> API operator.
expr.CONSTRUCTORS = {
  eq = "equals", ne = "notEqual", lt = "lessThan", gt = "greaterThan", le = "lessOrEqual",
  ge = "greaterOrEqual", contains = "contains", not_contains = "notContain",
  starts_with = "startsWith", includes = "includes", excludes = "excludes",
}

for fname, operator in pairs(expr.CONSTRUCTORS) do
  expr[fname] = function(column, value, ...)
    if select("#", ...) > 0 then misuse(fname, "takes (column, value)") end
    return leaf(fname, column, operator, value)
  end
end

-- A filter with an API operator name, for operators without a builder (e.g. "within").
function expr.filter(column, operator, value)
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
    return expr.filter(x.column, x.operator, x.value)
  end
  misuse(fname, "expected a filter expression (filters.eq, filters.all, ...), got "
    .. (type(x) == "table" and "a plain table" or type(x)))
end
expr.as_expr = as_expr

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
function expr.all(list) return compose("and", "all", list) end

-- OR of the expressions.
function expr.any(list) return compose("or", "any", list) end

-- Negation; see the note on NOT at the top of this file.
function expr.not_(x)
  return setmetatable({ tag = "not", item = as_expr(x, "not_") }, Expr)
end

-- Numbers the leaves of an expression depth-first. Returns the list of leaves and the AST
-- (nil when there is no filter at all, e.g. all{}).
function expr.flatten(e, fname)
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
  local ast = walk(e, nil)
  return leaves, ast and logic.normalize(ast)
end

-- Accepts an expression or a list of them (AND).
function expr.to_expr(x, fname)
  if is_expr(x) then return x end
  if type(x) == "table" and getmetatable(x) == nil then
    if x.operator ~= nil then return as_expr(x, fname) end
    return expr.all(x)
  end
  misuse(fname, "expected a filter expression or a list of them, got " .. type(x))
end

-- A builder leaf as an API filter table, its value formatted from its Lua type only.
function expr.api_filter(f)
  return { column = f.column, operator = f.operator, value = (values.format(f.value, nil)) }
end

-- Builds `{ reportFilters = [...], reportBooleanFilter = "..." | nil }` from an expression
-- (or a list of expressions, ANDed), without describe: values are formatted from their Lua
-- types only. reportBooleanFilter is nil when every filter is ANDed.
function expr.build(e)
  local leaves, ast = expr.flatten(expr.to_expr(e, "build"), "build")
  local out = json.array()
  for i, f in ipairs(leaves) do out[i] = expr.api_filter(f) end
  local text
  if ast and not logic.is_conjunction(ast) then text = logic.render(ast) end
  return { reportFilters = out, reportBooleanFilter = text }
end

return expr
