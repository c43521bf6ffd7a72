-- sfreports.run_options.dates: the date_filter run option -> the report's
-- standardDateFilter, a relative duration (THIS_FISCAL_QUARTER, LAST_N_DAYS:30) checked
-- against the durations describe offers, or a CUSTOM from/to range.
local args = require "sfreports.filters.args"
local values = require "sfreports.filters.values"
local D = require "sfreports.describe"
local json = require "sfreports.json"

local type, ipairs = type, ipairs
local concat = table.concat
local min = math.min
local format, sub, upper, find, match = string.format, string.sub, string.upper, string.find, string.match

local misuse, quote, or_list, check_keys = args.misuse, args.quote, args.or_list, args.check_keys
local lua_date, ISO_DATE, DATE_TYPES = values.lua_date, values.ISO_DATE, values.DATE_TYPES
local NULL = json.null
args.own_file()

local dates = {}

local DURATION_FAMILIES = {
  LAST_N_DAYS = true, NEXT_N_DAYS = true, LAST_N_WEEKS = true, NEXT_N_WEEKS = true,
  LAST_N_MONTHS = true, NEXT_N_MONTHS = true, LAST_N_QUARTERS = true, NEXT_N_QUARTERS = true,
  LAST_N_YEARS = true, NEXT_N_YEARS = true, LAST_N_FISCAL_QUARTERS = true, NEXT_N_FISCAL_QUARTERS = true,
  LAST_N_FISCAL_YEARS = true, NEXT_N_FISCAL_YEARS = true, N_DAYS_AGO = true, N_WEEKS_AGO = true,
  N_MONTHS_AGO = true, N_QUARTERS_AGO = true, N_YEARS_AGO = true, N_FISCAL_QUARTERS_AGO = true,
  N_FISCAL_YEARS_AGO = true,
}

local function table_or_nil(v)
  if type(v) == "table" then return v end
  return nil
end

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
  if values.is_date_mark(v) then
    if type(v.value) == "string" then return sub(v.value, 1, 10) end
    return lua_date(v.value, false)
  end
  if type(v) == "number" then
    values.check_number(v, "prepare")
    return lua_date(v, false)
  end
  if values.is_date_table(v) then
    values.check_date_table(v, "prepare")
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
    local c, msg, fields = D.resolve(idx, df.column, "date_filter")
    if not c then return nil, msg, fields end
    if c.dataType and not DATE_TYPES[c.dataType] then
      return nil, format("date_filter column %s is a %s column, not a date", D.column_text(c), c.dataType),
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
  for i, v in ipairs(D.close_matches(duration, candidates)) do shown[i] = quote(v) end
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
function dates.standard_date_filter(describe, idx, md, df)
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

return dates
