-- sfreports.cli.syntax: the value syntax of the options that change a run (--filter,
-- --logic, --replace-filters, --date, --from/--to, --sort, --top, --columns, --aggregate,
-- --replace-aggregates), turned into
-- the library's run options. Checked before any request: a typo is a usage error (exit
-- status 2) and costs no API call; what only the org can judge is left to the library.
local argv = require "sfreports.cli.argv"

local type, ipairs, tonumber, pcall, tostring = type, ipairs, tonumber, pcall, tostring
local format, find, match, sub, gsub, lower, upper =
  string.format, string.find, string.match, string.sub, string.gsub, string.lower, string.upper
local concat, floor = table.concat, math.floor
local usage_error = argv.usage_error

local syntax = {}

-- Filter operators: symbols and API names, matched after lower-casing and dropping _ and -.
local SYMBOL_OPERATORS = {
  ["="] = "equals", ["=="] = "equals", ["!="] = "notEqual", ["<>"] = "notEqual",
  ["<"] = "lessThan", [">"] = "greaterThan", ["<="] = "lessOrEqual", [">="] = "greaterOrEqual",
}
local WORD_OPERATORS = {
  equals = "equals", eq = "equals", equal = "equals",
  notequal = "notEqual", notequals = "notEqual", ne = "notEqual",
  lessthan = "lessThan", lt = "lessThan", greaterthan = "greaterThan", gt = "greaterThan",
  lessorequal = "lessOrEqual", le = "lessOrEqual", greaterorequal = "greaterOrEqual", ge = "greaterOrEqual",
  contains = "contains", notcontain = "notContain", notcontains = "notContain",
  startswith = "startsWith", includes = "includes", excludes = "excludes", within = "within",
}
-- Operators whose value may be a list ("any of these").
local LIST_OPERATORS = {
  equals = true, notEqual = true, contains = true, notContain = true, startsWith = true,
  includes = true, excludes = true,
}

-- Reads a quoted string starting at pos (the quote). Backslash escapes the quote and itself.
-- Returns the text and the position after the closing quote, or nil.
local function read_quoted(s, pos)
  local q = sub(s, pos, pos)
  local out = {}
  local i = pos + 1
  while i <= #s do
    local c = sub(s, i, i)
    if c == "\\" and (sub(s, i + 1, i + 1) == q or sub(s, i + 1, i + 1) == "\\") then
      out[#out + 1] = sub(s, i + 1, i + 1)
      i = i + 2
    elseif c == q then
      return concat(out), i + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return nil
end

-- Parses a filter VALUE: one value or a comma list, items optionally quoted.
-- Returns a string or a list of strings.
local function parse_filter_value(s, spec)
  if not find(s, "%S") then return "" end
  local items = {}
  local pos = find(s, "%S")
  while true do
    local c = sub(s, pos, pos)
    local item
    if c == '"' or c == "'" then
      local text, after = read_quoted(s, pos)
      if not text then usage_error(format("--filter %q: a quote is not closed", spec)) end
      item = text
      pos = find(s, "%S", after) or #s + 1
      local nextc = sub(s, pos, pos)
      if nextc ~= "," and nextc ~= "" then
        usage_error(format("--filter %q: unexpected text after a quoted value; separate values with commas", spec))
      end
    else
      local comma = find(s, ",", pos, true)
      item = match(sub(s, pos, (comma or #s + 1) - 1), "^(.-)%s*$")
      if item == "" then usage_error(format("--filter %q: an empty value in a comma list", spec)) end
      pos = comma or #s + 1
    end
    items[#items + 1] = item
    if sub(s, pos, pos) ~= "," then break end
    pos = find(s, "%S", pos + 1)
    if not pos then usage_error(format("--filter %q: the comma list ends with a comma", spec)) end
  end
  if #items == 1 then return items[1] end
  return items
end

-- "COLUMN OPERATOR VALUE" -> { column =, operator =, value = }. Raises usage errors.
function syntax.parse_filter(spec)
  local pos = find(spec, "%S")
  if not pos then usage_error("--filter needs \"COLUMN OPERATOR VALUE\", got an empty string") end
  local column
  local c = sub(spec, pos, pos)
  if c == '"' or c == "'" then
    local text, after = read_quoted(spec, pos)
    if not text or text == "" then usage_error(format("--filter %q: the column name is not closed or empty", spec)) end
    column, pos = text, after
  else
    local s, e = find(spec, "^[^%s=!<>]+", pos)
    if not s then usage_error(format("--filter %q: expected a column name first", spec)) end
    column, pos = sub(spec, s, e), e + 1
  end
  pos = find(spec, "%S", pos)
  if not pos then
    usage_error(format("--filter %q: expected \"COLUMN OPERATOR VALUE\", e.g. \"AMOUNT > 1000\"", spec))
  end
  local operator, word
  local s, e = find(spec, "^[=!<>]+", pos)
  if s then
    word = sub(spec, s, e)
    operator = SYMBOL_OPERATORS[word]
  else
    s, e = find(spec, "^[%a_%-]+", pos)
    if s then
      word = sub(spec, s, e)
      operator = WORD_OPERATORS[gsub(lower(word), "[_%-]", "")]
      -- a word operator must be followed by a space or the end
      if operator and e < #spec and not find(sub(spec, e + 1, e + 1), "%s") then operator = nil end
    end
  end
  if not operator then
    word = word or match(spec, "^[^%s%w\"']+", pos) or match(spec, "^%S+", pos)
    usage_error(format("--filter %q: unknown operator '%s'; the operators are = != <> < > <= >= and the API"
      .. " names equals, notEqual, lessThan, greaterThan, lessOrEqual, greaterOrEqual, contains,"
      .. " notContain, startsWith, includes, excludes, within (e.g. \"AMOUNT >= 1000\","
      .. " \"NAME contains Acme\"; `sfreports operators` lists them per data type)", spec, tostring(word)))
  end
  local value = parse_filter_value(sub(spec, e + 1), spec)
  if type(value) == "table" and not LIST_OPERATORS[operator] then
    usage_error(format("--filter %q: %s takes one value, not a comma list (quote a value that holds a comma)",
      spec, operator))
  end
  return { column = column, operator = operator, value = value }
end

-- "a, b,c" -> { "a", "b", "c" }
local function comma_list(s, option)
  local out = {}
  for item in (s .. ","):gmatch("([^,]*),") do
    item = match(item, "^%s*(.-)%s*$")
    if item == "" then usage_error(option .. " " .. format("%q", s) .. ": an empty name in the comma list") end
    out[#out + 1] = item
  end
  return out
end

local function is_date_literal(s)
  return find(s, "^%a[%w_]*$") ~= nil or find(s, "^%a[%w_]*:%d+$") ~= nil
end

local DAYS_IN_MONTH = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function check_iso_date(s, option)
  local y, m, d = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  m, d = tonumber(m), tonumber(d)
  if not y or m < 1 or m > 12 or d < 1 or d > DAYS_IN_MONTH[m] then
    usage_error(format("%s %q is not a date like 2024-01-31", option, s))
  end
  return s
end

-- --date [COLUMN:]LITERAL (with --date-column), or --from/--to -> date_filter option.
local function date_filter(o)
  local column = o.date_column
  if o.date then
    if o.from or o.to then usage_error("--date and --from/--to cannot be combined") end
    local spec = o.date
    local col, literal = match(spec, "^([^:]+):(.+)$")
    -- LAST_N_DAYS:30 is a literal, not COLUMN:LITERAL
    if not col or find(literal, "^%d+$") then col, literal = nil, spec end
    if col and column then usage_error("--date names a column and --date-column another; give one") end
    if not is_date_literal(literal) then
      usage_error(format("--date %q: expected COLUMN:LITERAL or LITERAL, e.g. CLOSE_DATE:THIS_MONTH"
        .. " or LAST_N_DAYS:30", spec))
    end
    return { column = col or column, duration = upper(literal) }
  end
  if o.from or o.to then
    local from = o.from and check_iso_date(o.from, "--from")
    local to = o.to and check_iso_date(o.to, "--to")
    if from and to and from > to then usage_error(format("--from %s is after --to %s", from, to)) end
    return { column = column, from = from, to = to }
  end
  if column then usage_error("--date-column needs --date LITERAL or --from/--to") end
  return nil
end

-- "COLUMN[:asc|desc]" -> { column =, order = }
local function parse_sort(s)
  local col, order = match(s, "^(.*):(%a+)$")
  if col and (lower(order) == "asc" or lower(order) == "desc") and col ~= "" then
    return { column = col, order = lower(order) }
  end
  if not find(s, "%S") then usage_error("--sort needs a column name") end
  return { column = s, order = "asc" }
end

local function parse_top(s)
  local n, dir = match(s, "^(%d+):(%a+)$")
  if not n then n = match(s, "^(%d+)$") end
  n = tonumber(n)
  if not n or n < 1 or n ~= floor(n) then
    usage_error(format("--top %q: expected a positive whole number of rows, e.g. 10 or 10:desc", s))
  end
  if dir then
    dir = lower(dir)
    if dir ~= "asc" and dir ~= "desc" then usage_error(format("--top %q: the direction is asc or desc", s)) end
    return { rows = n, direction = dir }
  end
  return n
end

-- Turns the parsed "change" options into client run options. Raises usage errors.
function syntax.run_options(o)
  local r = {}
  if o.filter then
    local list = {}
    for i, spec in ipairs(o.filter) do list[i] = syntax.parse_filter(spec) end
    r.filters = list
    if o.logic then
      local filters = require "sfreports.filters"
      local ok, canonical, err = pcall(filters.normalize_logic, o.logic, #list)
      if not ok or not canonical then
        local why = ok and err and err.message or tostring(canonical)
        usage_error("--logic " .. format("%q", o.logic) .. ": " .. why)
      end
      r.logic = o.logic
    end
  elseif o.logic then
    usage_error("--logic needs --filter options to combine")
  end
  if o.replace_filters == true then
    r.replace_filters = true
  elseif o.replace_filters then
    r.replace_filters = comma_list(o.replace_filters, "--replace-filters")
  end
  r.date_filter = date_filter(o)
  if o.sort then
    local list = {}
    for i, s in ipairs(o.sort) do list[i] = parse_sort(s) end
    r.sort = list
  end
  if o.top then r.top = parse_top(o.top) end
  if o.aggregate then
    local A = require "sfreports.run_options.aggregates"
    local list = {}
    for i, spec in ipairs(o.aggregate) do
      local a, why = A.parse_text(spec)
      if not a then usage_error(format("--aggregate %q: %s", spec, why)) end
      list[i] = a
    end
    r.aggregates = list
  end
  if o.replace_aggregates == true then
    r.replace_aggregates = true
  elseif o.replace_aggregates then
    -- aggregates (sum(AMOUNT), s!AMOUNT, RowCount) or columns whose saved aggregates go
    local A = require "sfreports.run_options.aggregates"
    local list = comma_list(o.replace_aggregates, "--replace-aggregates")
    for i, item in ipairs(list) do list[i] = A.parse_text(item) or item end
    r.replace_aggregates = list
  end
  if o.columns then
    local cols = {}
    for _, s in ipairs(o.columns) do
      for _, c in ipairs(comma_list(s, "--columns")) do cols[#cols + 1] = c end
    end
    r.columns = cols
  end
  return r
end

return syntax
