-- sfreports.run_options.aggregates: run-time aggregates (the summaries a report shows per
-- group and as grand totals): the builders (public as sfreports.filters.sum / avg / min /
-- max / unique), and the `aggregates` / `replace_aggregates` run options turned into the
-- reportMetadata.aggregates list, checked against the report's describe.
--
--   local F = require "sfreports.filters"
--   client:run_sync(id, { aggregates = { "RowCount", F.sum("AMOUNT"), F.max("Probability (%)"),
--                                        F.unique("ACCOUNT_NAME"), "a!AMOUNT" } })
--
-- Aggregate identifiers (salesforce-analytics-api.md §6.5): "RowCount", and "<op>!<column>"
-- with op s (sum), a (average), m (min), x (max), u (unique count). A builder names its
-- column by API name or label; a raw "s!Amount" string is resolved the same way. Any other
-- string (a custom summary formula such as "FORMULA1") must be one of the report's saved
-- aggregates.
--
-- Checks (each an `invalid` error naming option "aggregates", before anything is sent):
-- an unknown column (with suggestions), an aggregate the column's type does not allow
-- (sum/average: int, double, currency, percent; min/max: those and date, datetime;
-- unique: any column describe does not mark uniqueCountable = false), a joined
-- (MULTI_BLOCK) report (its aggregates belong to its blocks), a grouping whose
-- sortAggregate names an aggregate the run no longer has, and replace_aggregates naming
-- an aggregate or column the report has no saved aggregate for.
local args = require "sfreports.filters.args"
local D = require "sfreports.describe"
local json = require "sfreports.json"

local type, pairs, ipairs, tostring, setmetatable, getmetatable, select =
  type, pairs, ipairs, tostring, setmetatable, getmetatable, select
local format, match, lower = string.format, string.match, string.lower
local concat = table.concat

local misuse, quote, invalid, decode, list_length = args.misuse, args.quote, args.invalid, args.decode,
  args.list_length
local NULL = json.null
args.own_file()

local A = {}

-- Builder name -> API prefix letter, and back.
A.BUILDERS = { sum = "s", avg = "a", min = "m", max = "x", unique = "u" }
local OP_NAME = { s = "sum", a = "average", m = "min", x = "max", u = "unique count" }

local NUMERIC = { int = true, double = true, currency = true, percent = true }
local ORDERED = { int = true, double = true, currency = true, percent = true, date = true, datetime = true }
-- The data types each operation takes (nil: any type, subject to uniqueCountable).
local ALLOWED = { s = NUMERIC, a = NUMERIC, m = ORDERED, x = ORDERED }
local ALLOWED_TEXT = {
  s = "int, double, currency or percent", a = "int, double, currency or percent",
  m = "int, double, currency, percent, date or datetime", x = "int, double, currency, percent, date or datetime",
}

local Agg = {}
Agg.__index = Agg
function Agg:__tostring() return self.op .. "!" .. self.column end

local function is_aggregate(x) return getmetatable(x) == Agg end
A.is_aggregate = is_aggregate

for fname, op in pairs(A.BUILDERS) do
  A[fname] = function(column, ...)
    if select("#", ...) > 0 then misuse(fname, "takes one column name") end
    if type(column) ~= "string" or column == "" then
      misuse(fname, "column must be a non-empty string, got " .. (column == "" and "\"\"" or type(column)))
    end
    return setmetatable({ op = op, column = column }, Agg)
  end
end

-- One entry of the aggregates option as { op =, column = } (a column aggregate),
-- { row_count = true } or { name = } (another identifier). Raises on misuse.
local function parse_entry(x, option)
  if is_aggregate(x) then return { op = x.op, column = x.column } end
  if type(x) ~= "string" or x == "" then
    misuse("prepare", option .. " must hold aggregates: \"RowCount\", \"s!COLUMN\" or builders such as"
      .. " filters.sum(\"AMOUNT\"), got " .. (x == "" and "\"\"" or type(x)))
  end
  if x == "RowCount" then return { row_count = true } end
  local op, column = match(x, "^([samxu])!(.+)$")
  if op then return { op = op, column = column } end
  return { name = x }
end

-- The saved aggregates of the report (a list of strings), or nil and a `decode` error.
local function saved_list(md)
  local saved = md.aggregates
  if saved == nil or saved == NULL then return {} end
  if type(saved) ~= "table" then
    return nil, decode("the report's describe answer is not usable: describe.reportMetadata.aggregates is not a list")
  end
  local out = {}
  for i, a in ipairs(saved) do
    if type(a) ~= "string" then
      return nil, decode(format("the report's describe answer is not usable: describe.reportMetadata.aggregates[%d]"
        .. " is a %s, expected a string", i, type(a)))
    end
    out[i] = a
  end
  return out
end

-- Whether describe marks the column as not unique-countable (reportTypeMetadata
-- categories, then the extended metadata's column infos).
local function not_unique_countable(describe, name)
  local rtm = type(describe.reportTypeMetadata) == "table" and describe.reportTypeMetadata or {}
  for _, cat in ipairs(type(rtm.categories) == "table" and rtm.categories or {}) do
    local cols = type(cat) == "table" and type(cat.columns) == "table" and cat.columns
    local info = cols and cols[name]
    if type(info) == "table" and info.uniqueCountable ~= nil then return info.uniqueCountable == false end
  end
  local rem = type(describe.reportExtendedMetadata) == "table" and describe.reportExtendedMetadata or {}
  local info = type(rem.detailColumnInfo) == "table" and rem.detailColumnInfo[name]
  return type(info) == "table" and info.uniqueCountable == false
end

-- The API identifier of a parsed entry, checked against describe: a string, or nil, a
-- sentence and fields.
local function identifier(describe, idx, e, saved_set, option)
  if e.row_count then return "RowCount" end
  if e.name then
    if saved_set[e.name] then return e.name end
    return nil, format("unknown aggregate %s in %s: expected \"RowCount\", \"<op>!COLUMN\" (op s, a, m, x or u),"
      .. " a builder such as filters.sum(\"AMOUNT\"), or one of the report's saved aggregates", quote(e.name), option),
      { option = option, aggregate = e.name }
  end
  local c, msg, fields = D.resolve(idx, e.column, option)
  if not c then return nil, msg, fields end
  local name = e.op .. "!" .. c.name
  local allowed = ALLOWED[e.op]
  if allowed and c.dataType and not allowed[c.dataType] then
    return nil, format("aggregate %s (%s) is not allowed on column %s of type %s; %s takes %s columns", quote(name),
      OP_NAME[e.op], D.column_text(c), c.dataType, OP_NAME[e.op], ALLOWED_TEXT[e.op]),
      { option = option, column = c.name, aggregate = name }
  end
  if e.op == "u" and not_unique_countable(describe, c.name) then
    return nil, format("aggregate %s (unique count) is not allowed on column %s: the report type marks it"
      .. " not unique-countable", quote(name), D.column_text(c)), { option = option, column = c.name, aggregate = name }
  end
  return name
end

-- The saved aggregates replace_aggregates leaves: all (nil/false), none (true), or those
-- a list does not name (an entry names an aggregate, or a column: every saved aggregate
-- on it). Returns the list, or nil, a sentence and fields.
local function kept_after_replace(describe, idx, saved, replace)
  if replace == nil or replace == false then return saved end
  if replace == true then return {} end
  if type(replace) ~= "table" then misuse("prepare", "replace_aggregates must be a boolean or a list") end
  local saved_set = {}
  for _, a in ipairs(saved) do saved_set[a] = true end
  local drop = {}
  for i = 1, list_length(replace, "prepare", "replace_aggregates") do
    local x = replace[i]
    local e = parse_entry(x, "replace_aggregates")
    local found = false
    if e.name and not saved_set[e.name] then
      -- a column: every saved aggregate on it
      local c, msg, fields = D.resolve(idx, e.name, "replace_aggregates")
      if not c then return nil, msg, fields end
      for _, a in ipairs(saved) do
        if match(a, "^[samxu]!(.+)$") == c.name then drop[a], found = true, true end
      end
    else
      local name, msg, fields = identifier(describe, idx, e, saved_set, "replace_aggregates")
      if not name then return nil, msg, fields end
      if saved_set[name] then drop[name], found = true, true end
    end
    if not found then
      local shown = is_aggregate(x) and tostring(x) or x
      return nil, format("replace_aggregates names %s, but the report has no such saved aggregate (saved: %s)",
        quote(shown), #saved > 0 and concat(saved, ", ") or "none"),
        { option = "replace_aggregates", aggregate = shown }
    end
  end
  local kept = {}
  for _, a in ipairs(saved) do
    if not drop[a] then kept[#kept + 1] = a end
  end
  return kept
end

-- The aggregates the run ends with: kept saved ones, then the option's (duplicates once).
-- Returns a JSON array, or nil and an error.
local function final_list(describe, idx, md, opts)
  local saved, derr = saved_list(md)
  if not saved then return nil, derr end
  local kept, msg, fields = kept_after_replace(describe, idx, saved, opts.replace_aggregates)
  if not kept then return nil, invalid(msg, fields) end
  local out, seen = json.array(), {}
  local function add(name)
    if not seen[name] then
      seen[name] = true
      out[#out + 1] = name
    end
  end
  for _, a in ipairs(kept) do add(a) end
  local list = opts.aggregates
  if list ~= nil then
    if type(list) ~= "table" or is_aggregate(list) then
      misuse("prepare", "aggregates must be a list, e.g. { \"RowCount\", filters.sum(\"AMOUNT\") }")
    end
    local saved_set = {}
    for _, a in ipairs(saved) do saved_set[a] = true end
    for i = 1, list_length(list, "prepare", "aggregates") do
      local name, why, wfields = identifier(describe, idx, parse_entry(list[i], "aggregates"), saved_set, "aggregates")
      if not name then return nil, invalid(why, wfields) end
      add(name)
    end
  end
  return out
end

-- Groupings (the run's or the saved ones) whose sortAggregate the final list lacks.
local function dangling_sort_aggregate(out, md, list)
  local have = {}
  for _, a in ipairs(list) do have[a] = true end
  for _, key in ipairs({ "groupingsDown", "groupingsAcross" }) do
    local gs = out[key] or md[key]
    for _, g in ipairs(type(gs) == "table" and gs or {}) do
      local sa = type(g) == "table" and g.sortAggregate
      if type(sa) == "string" and not have[sa] then
        return format("grouping %s is sorted by aggregate %s, which the run no longer has; keep it in aggregates"
          .. " or change the grouping's sortAggregate", quote(g.name), quote(sa)), sa
      end
    end
  end
  return nil
end

-- True when opts change the aggregates.
function A.wanted(opts)
  return opts.aggregates ~= nil or (opts.replace_aggregates ~= nil and opts.replace_aggregates ~= false)
end

-- Sets out.aggregates from the aggregates and replace_aggregates options (nothing when
-- neither is given). Returns true, or nil and an error (`invalid`, or `decode` for a
-- describe answer of the wrong shape).
function A.add(out, opts, describe, idx, md)
  if not A.wanted(opts) then return true end
  local fmt = out.reportFormat or md.reportFormat
  if fmt == "MULTI_BLOCK" then
    return nil, invalid("a joined (MULTI_BLOCK) report cannot take run-time aggregates: its aggregates belong to"
      .. " its blocks, and Salesforce accepts no aggregate changes for it", { option = "aggregates" })
  end
  local list, err = final_list(describe, idx, md, opts)
  if not list then return nil, err end
  local why, sa = dangling_sort_aggregate(out, md, list)
  if why then return nil, invalid(why, { option = "aggregates", aggregate = sa }) end
  out.aggregates = list
  return true
end

-- "sum(AMOUNT)", "avg(Amount)", "count", "RowCount", "s!AMOUNT" -> an aggregates entry
-- (a builder or a string), or nil and a sentence. Used by the command line.
function A.parse_text(s)
  if type(s) ~= "string" then return nil, "expected text" end
  local t = match(s, "^%s*(.-)%s*$")
  local l = lower(t)
  if l == "rowcount" or l == "count" or l == "count()" or l == "row_count" then return "RowCount" end
  if match(t, "^[samxu]!.+$") then return t end
  local fname, column = match(t, "^(%a+)%s*%(%s*(.-)%s*%)$")
  if fname then
    fname = lower(fname)
    if fname == "average" or fname == "mean" then fname = "avg" end
    if fname == "count_unique" or fname == "distinct" then fname = "unique" end
    column = match(column, "^[\"'](.*)[\"']$") or column
    if A.BUILDERS[fname] and column ~= "" then return A[fname](column) end
  end
  return nil, "expected sum(COLUMN), avg(COLUMN), min(COLUMN), max(COLUMN), unique(COLUMN), RowCount"
    .. " or an API identifier such as s!AMOUNT"
end

return A
