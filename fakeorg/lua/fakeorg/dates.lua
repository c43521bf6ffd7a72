-- fakeorg.dates: relative date literals (THIS_MONTH, LAST_N_DAYS:30, ...), resolved against
-- today's UTC date, for standardDateFilter, date filter values and describe's
-- standardDateFilterDurationGroups. The fiscal year equals the calendar year (January start).
local util = require "fakeorg.util"

local floor = math.floor
local days, civil, iso = util.days, util.civil, util.iso

local dates = {}

local function month_start(y, m) return days(y, m, 1) end

local function add_months(y, m, n)
  local t = y * 12 + (m - 1) + n
  return floor(t / 12), t % 12 + 1
end

local function month_range(y, m, offset, count)
  local y1, m1 = add_months(y, m, offset)
  local y2, m2 = add_months(y1, m1, count)
  return month_start(y1, m1), month_start(y2, m2) - 1
end

local function quarter_range(y, m, offset)
  local qm = floor((m - 1) / 3) * 3 + 1
  return month_range(y, qm, offset * 3, 3)
end

local function year_range(y, offset, count)
  return days(y + offset, 1, 1), days(y + offset + (count or 1), 1, 1) - 1
end

local function week_range(today, offset)
  local start = today - util.weekday(today) + offset * 7
  return start, start + 6
end

-- literal -> function(today, y, m) -> start, end (days)
local FIXED = {
  TODAY = function(t) return t, t end,
  YESTERDAY = function(t) return t - 1, t - 1 end,
  TOMORROW = function(t) return t + 1, t + 1 end,
  THIS_WEEK = function(t) return week_range(t, 0) end,
  LAST_WEEK = function(t) return week_range(t, -1) end,
  NEXT_WEEK = function(t) return week_range(t, 1) end,
  THIS_MONTH = function(_, y, m) return month_range(y, m, 0, 1) end,
  LAST_MONTH = function(_, y, m) return month_range(y, m, -1, 1) end,
  NEXT_MONTH = function(_, y, m) return month_range(y, m, 1, 1) end,
  THIS_QUARTER = function(_, y, m) return quarter_range(y, m, 0) end,
  LAST_QUARTER = function(_, y, m) return quarter_range(y, m, -1) end,
  NEXT_QUARTER = function(_, y, m) return quarter_range(y, m, 1) end,
  THIS_YEAR = function(_, y) return year_range(y, 0) end,
  LAST_YEAR = function(_, y) return year_range(y, -1) end,
  NEXT_YEAR = function(_, y) return year_range(y, 1) end,
  LAST_N_YEARS_2 = function(_, y) return year_range(y, -2, 2) end,
}
FIXED.THIS_FISCAL_QUARTER = FIXED.THIS_QUARTER
FIXED.LAST_FISCAL_QUARTER = FIXED.LAST_QUARTER
FIXED.NEXT_FISCAL_QUARTER = FIXED.NEXT_QUARTER
FIXED.THIS_FISCAL_YEAR = FIXED.THIS_YEAR
FIXED.LAST_FISCAL_YEAR = FIXED.LAST_YEAR
FIXED.NEXT_FISCAL_YEAR = FIXED.NEXT_YEAR

local PARAM = {
  LAST_N_DAYS = function(t, _, _, n) return t - n + 1, t end,
  NEXT_N_DAYS = function(t, _, _, n) return t, t + n - 1 end,
  LAST_N_MONTHS = function(_, y, m, n) return month_range(y, m, -n, n) end,
  NEXT_N_MONTHS = function(_, y, m, n) return month_range(y, m, 1, n) end,
  LAST_N_YEARS = function(_, y, _, n) return year_range(y, -n, n) end,
  NEXT_N_YEARS = function(_, y, _, n) return year_range(y, 1, n) end,
}

-- Resolves a literal to (start_days, end_days), or nil when it is not a date literal.
function dates.range(literal, today)
  if type(literal) ~= "string" then return nil end
  today = today or util.today()
  local y, m = civil(today)
  local f = FIXED[literal]
  if f then return f(today, y, m) end
  local name, n = literal:match("^([%u_]+):(%d+)$")
  if name and PARAM[name] then return PARAM[name](today, y, m, tonumber(n)) end
  return nil
end

local GROUPS = {
  { "Fiscal Year", { { "THIS_FISCAL_YEAR", "Current FY" }, { "LAST_FISCAL_YEAR", "Previous FY" },
    { "NEXT_FISCAL_YEAR", "Next FY" } } },
  { "Fiscal Quarter", { { "THIS_FISCAL_QUARTER", "Current FQ" }, { "LAST_FISCAL_QUARTER", "Previous FQ" },
    { "NEXT_FISCAL_QUARTER", "Next FQ" } } },
  { "Calendar Year", { { "THIS_YEAR", "Current CY" }, { "LAST_YEAR", "Previous CY" },
    { "NEXT_YEAR", "Next CY" }, { "LAST_N_YEARS:2", "Previous 2 CY" } } },
  { "Calendar Quarter", { { "THIS_QUARTER", "Current CQ" }, { "LAST_QUARTER", "Previous CQ" },
    { "NEXT_QUARTER", "Next CQ" } } },
  { "Calendar Month", { { "THIS_MONTH", "This Month" }, { "LAST_MONTH", "Last Month" },
    { "NEXT_MONTH", "Next Month" } } },
  { "Calendar Week", { { "THIS_WEEK", "This Week" }, { "LAST_WEEK", "Last Week" },
    { "NEXT_WEEK", "Next Week" } } },
  { "Day", { { "YESTERDAY", "Yesterday" }, { "TODAY", "Today" }, { "TOMORROW", "Tomorrow" },
    { "LAST_N_DAYS:7", "Last 7 Days" }, { "LAST_N_DAYS:30", "Last 30 Days" },
    { "LAST_N_DAYS:60", "Last 60 Days" }, { "LAST_N_DAYS:90", "Last 90 Days" },
    { "LAST_N_DAYS:120", "Last 120 Days" }, { "NEXT_N_DAYS:7", "Next 7 Days" },
    { "NEXT_N_DAYS:30", "Next 30 Days" }, { "NEXT_N_DAYS:90", "Next 90 Days" } } },
}

-- describe.reportTypeMetadata.standardDateFilterDurationGroups, with computed dates.
function dates.duration_groups(today)
  today = today or util.today()
  local out = { {
    label = "",
    standardDateFilterDurations = { {
      label = "Custom", value = "CUSTOM", startDate = iso(today), endDate = iso(today - 1) } },
  } }
  for _, group in ipairs(GROUPS) do
    local durations = {}
    for i, d in ipairs(group[2]) do
      local s, e = dates.range(d[1], today)
      durations[i] = { label = d[2], value = d[1], startDate = iso(s), endDate = iso(e) }
    end
    out[#out + 1] = { label = group[1], standardDateFilterDurations = durations }
  end
  return out
end

-- Date grouping buckets: days -> sort key, value, label.
local function quarter_of(m) return floor((m - 1) / 3) + 1 end

local BUCKETS = {
  None = function(z) local s = iso(z); return z, s, util.date_label(s) end,
  Day = function(z) local s = iso(z); return z, s, util.date_label(s) end,
  Week = function(z)
    local s = z - util.weekday(z)
    return s, iso(s), util.date_label(iso(s)) .. " - " .. util.date_label(iso(s + 6))
  end,
  Month = function(z)
    local y, m = civil(z)
    local s = month_start(y, m)
    return s, iso(s), util.MONTHS[m] .. " " .. y
  end,
  Quarter = function(z)
    local y, m = civil(z)
    local q = quarter_of(m)
    local s = month_start(y, (q - 1) * 3 + 1)
    return s, iso(s), ("Q%d-%d"):format(q, y)
  end,
  Year = function(z)
    local y = civil(z)
    return days(y, 1, 1), iso(days(y, 1, 1)), tostring(floor(y))
  end,
}
BUCKETS.FiscalQuarter = BUCKETS.Quarter
BUCKETS.FiscalYear = BUCKETS.Year

function dates.bucket(granularity, z)
  return (BUCKETS[granularity] or BUCKETS.None)(z)
end

function dates.valid_granularity(g)
  return BUCKETS[g] ~= nil
end

dates.GRANULARITIES = {
  { label = "Day", value = "Day" }, { label = "Calendar Week", value = "Week" },
  { label = "Calendar Month", value = "Month" }, { label = "Calendar Quarter", value = "Quarter" },
  { label = "Calendar Year", value = "Year" }, { label = "Fiscal Quarter", value = "FiscalQuarter" },
  { label = "Fiscal Year", value = "FiscalYear" },
}

return dates
