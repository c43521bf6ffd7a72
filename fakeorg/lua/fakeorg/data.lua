-- fakeorg.data: the synthetic Opportunity data set: column catalog, account/owner pools,
-- deterministic record generation (one LCG per record, seeded by report seed + index)
-- and Salesforce data-cell encoding (§6.3 of the API notes).
local util = require "fakeorg.util"
local ids = require "sfreports.ids"

local null = util.null
local format = string.format

local data = {}

local function make_id(prefix, n)
  return ids.to18(prefix .. "Fk" .. util.base62(n, 10))
end
data.make_id = make_id

-- Picklists (order = Salesforce picklist order, used when grouping).
local STAGES = {
  { "Prospecting", 10, "Pipeline" }, { "Qualification", 10, "Pipeline" },
  { "Needs Analysis", 20, "Pipeline" }, { "Value Proposition", 50, "Pipeline" },
  { "Id. Decision Makers", 60, "Best Case" }, { "Perception Analysis", 70, "Best Case" },
  { "Proposal/Price Quote", 75, "Commit" }, { "Negotiation/Review", 90, "Commit" },
  { "Closed Won", 100, "Closed" }, { "Closed Lost", 0, "Omitted" },
}
local TYPES = { "Existing Customer - Downgrade", "Existing Customer - Replacement",
  "Existing Customer - Upgrade", "New Customer" }
local LEAD_SOURCES = { "Advertisement", "Partner Referral", "Phone Inquiry", "Purchased List", "Web", "Other" }
local FORECASTS = { "Pipeline", "Best Case", "Commit", "Closed", "Omitted" }
local INDUSTRIES = { "Agriculture", "Banking", "Biotechnology", "Construction", "Education",
  "Energy", "Healthcare", "Manufacturing", "Retail", "Technology" }
local COMPETITORS = { "Acme", "Globex", "Initech", "Umbrella" }

local picklists = {}
do
  local function names(list, field)
    local out = {}
    for i, v in ipairs(list) do out[i] = field and v[field] or v end
    return out
  end
  picklists.STAGE_NAME = names(STAGES, 1)
  picklists.TYPE = TYPES
  picklists.LEAD_SOURCE = LEAD_SOURCES
  picklists.FORECAST_CATEGORY = FORECASTS
  picklists.INDUSTRY = INDUSTRIES
  picklists.COMPETITORS = COMPETITORS
end
data.picklists = picklists

local ACCOUNT_WORDS = { "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka",
  "Tyrell", "Cyberdyne", "Soylent", "Hooli", "Vandelay", "Müller", "Café Olé", "Nakatomi",
  "Åkerlund", "Zoë's", "Smith, Jones & Co", "Østergaard", "北京科技", "O'Reilly", "Dupont" }
local ACCOUNT_SUFFIXES = { "Corp", "Inc.", "GmbH", "Ltd" }
local CITIES = {
  { "San Francisco", "USA" }, { "München", "Deutschland" }, { "São Paulo", "Brasil" },
  { "Zürich", "Schweiz" }, { "東京", "日本" }, { "London", "UK" }, { "Kraków", "Polska" },
  { "Montréal", "Canada" }, { "New York", "USA" }, { "Austin", "USA" },
}
local OWNERS = { "Ana García", "Bob O'Brien", "Chen Wei 陈伟", "Dana Smith", "Émile Zola",
  "Fatima Khan", "George Miller", "Hana Suzuki" }
local PRODUCTS = { "Widgets", "Gadgets", "Services", "Licenses", "Support", "Upgrade", "Consulting" }
local DESCRIPTIONS = {
  "Plain description",
  "Café ☕, \"quoted\"\nline",
  "Needs budget approval, then legal review",
  "Customer said: \"ship it\"",
  "Multi-line note\nsecond line\nthird line",
  "Ünïcödé test — naïve façade 日本語",
  "Renewal of annual contract",
  "Tab\tseparated, and a trailing space ",
}
local NEXT_STEPS = { "Send proposal", "Schedule demo", "Call back", "Negotiate, then sign", "Legal review" }
local CAMPAIGNS = { "Spring Webinar", "Trade Show 2025", "Email Blast “Q3”", "Partner Summit" }

-- Accounts and owners are shared by all reports (fixed seed), so lookups stay consistent.
local accounts, owners = {}, {}
do
  local rng = util.rng(4242)
  local i = 0
  for s, suffix in ipairs(ACCOUNT_SUFFIXES) do
    for w, word in ipairs(ACCOUNT_WORDS) do
      if (w + s) % 2 == 0 then
        i = i + 1
        local city = rng:pick(CITIES)
        accounts[i] = {
          id = make_id("001", i), name = word .. " " .. suffix,
          industry = rng:pick(INDUSTRIES), city = city[1], country = city[2],
        }
      end
    end
  end
  for j, name in ipairs(OWNERS) do
    owners[j] = { id = make_id("005", j), name = name }
  end
end
data.accounts, data.owners = accounts, owners

-- Column catalog of the "Opportunity" report type. kind drives cell encoding, filtering,
-- sorting and grouping: name (value id, label name), id, string, picklist, multipicklist,
-- textarea, currency, date, datetime, percent, int, double, boolean.
local COLUMNS = {
  { "OPPORTUNITY_ID", "Opportunity ID", "id", "Opportunity Information" },
  { "OPPORTUNITY_NAME", "Opportunity Name", "name", "Opportunity Information" },
  { "ACCOUNT_NAME", "Account Name", "name", "Account Information" },
  { "FULL_NAME", "Opportunity Owner", "name", "Opportunity Information" },
  { "STAGE_NAME", "Stage", "picklist", "Opportunity Information" },
  { "AMOUNT", "Amount", "currency", "Opportunity Information" },
  { "EXP_AMOUNT", "Expected Revenue", "currency", "Opportunity Information" },
  { "CLOSE_DATE", "Close Date", "date", "Opportunity Information" },
  { "CREATED_DATE", "Created Date", "datetime", "Opportunity Information" },
  { "LAST_ACTIVITY", "Last Activity", "date", "Opportunity Information" },
  { "PROBABILITY", "Probability (%)", "percent", "Opportunity Information" },
  { "TYPE", "Type", "picklist", "Opportunity Information" },
  { "LEAD_SOURCE", "Lead Source", "picklist", "Opportunity Information" },
  { "FORECAST_CATEGORY", "Forecast Category", "picklist", "Opportunity Information" },
  { "CLOSED", "Closed", "boolean", "Opportunity Information" },
  { "WON", "Won", "boolean", "Opportunity Information" },
  { "DESCRIPTION", "Description", "textarea", "Opportunity Information" },
  { "NEXT_STEP", "Next Step", "string", "Opportunity Information" },
  { "FISCAL_QUARTER", "Fiscal Period", "string", "Opportunity Information" },
  { "AGE", "Age", "int", "Opportunity Information" },
  { "QUANTITY", "Quantity", "double", "Opportunity Information" },
  { "INDUSTRY", "Industry", "picklist", "Account Information" },
  { "BILLING_CITY", "Billing City", "string", "Account Information" },
  { "BILLING_COUNTRY", "Billing Country", "string", "Account Information" },
  { "CAMPAIGN_SOURCE", "Primary Campaign Source", "string", "Opportunity Information" },
  { "COMPETITORS", "Competitors", "multipicklist", "Opportunity Information" },
}

local DATA_TYPES = { name = "string" }
local columns, column_list = {}, {}
for i, c in ipairs(COLUMNS) do
  local col = {
    name = c[1], label = c[2], kind = c[3], category = c[4], index = i,
    dataType = DATA_TYPES[c[3]] or c[3],
    filterable = c[3] ~= "textarea",
    isLookup = c[1] == "ACCOUNT_NAME" or c[1] == "FULL_NAME",
    values = picklists[c[1]],
  }
  columns[col.name] = col
  column_list[i] = col
end
data.columns, data.column_list = columns, column_list

local NUMERIC = { currency = true, percent = true, int = true, double = true }
function data.is_numeric(col) return NUMERIC[col.kind] == true end
function data.is_date(col) return col.kind == "date" or col.kind == "datetime" end

local FIRST_CLOSE = util.days(2024, 1, 1)
local CLOSE_SPAN = 4 * 365

local function amount_for(rng)
  if rng:chance(3) then return nil end
  if rng:chance(25) then return rng:int(1, 200) * 500 end
  return rng:int(1000, 250000) + rng:int(0, 99) / 100
end

local function competitors_for(rng)
  if rng:chance(40) then return nil end
  local picked = {}
  for _, name in ipairs(COMPETITORS) do
    if rng:chance(35) then picked[#picked + 1] = name end
  end
  if #picked == 0 then picked[1] = rng:pick(COMPETITORS) end
  return table.concat(picked, ";")
end

-- Builds record number i (1-based) of the data set with the given seed.
function data.record(seed, i)
  local rng = util.rng(seed, i)
  local account = rng:pick(accounts)
  local owner = rng:pick(owners)
  local stage = rng:pick(STAGES)
  local close = FIRST_CLOSE + rng:int(0, CLOSE_SPAN - 1)
  local created = close - rng:int(5, 400)
  local amount = amount_for(rng)
  local cy, cm = util.civil(close)
  local opp_id = make_id("006", seed * 100000 + i)
  local r = {
    OPPORTUNITY_ID = opp_id,
    OPPORTUNITY_NAME = { id = opp_id, name = format("%s - %d %s", account.name, rng:int(1, 500), rng:pick(PRODUCTS)) },
    ACCOUNT_NAME = account,
    FULL_NAME = owner,
    STAGE_NAME = stage[1],
    AMOUNT = amount,
    EXP_AMOUNT = amount and util.round2(amount * stage[2] / 100) or nil,
    CLOSE_DATE = util.iso(close),
    CREATED_DATE = util.iso(created),
    LAST_ACTIVITY = not rng:chance(25) and util.iso(created + rng:int(0, close - created)) or nil,
    PROBABILITY = stage[2],
    TYPE = not rng:chance(4) and rng:pick(TYPES) or nil,
    LEAD_SOURCE = not rng:chance(6) and rng:pick(LEAD_SOURCES) or nil,
    FORECAST_CATEGORY = stage[3],
    CLOSED = stage[2] == 100 or stage[2] == 0,
    WON = stage[2] == 100,
    DESCRIPTION = not rng:chance(10) and rng:pick(DESCRIPTIONS) or nil,
    NEXT_STEP = not rng:chance(40) and rng:pick(NEXT_STEPS) or nil,
    FISCAL_QUARTER = format("Q%d-%d", math.floor((cm - 1) / 3) + 1, cy),
    AGE = close - created,
    QUANTITY = rng:int(1, 400) / 4,
    INDUSTRY = account.industry,
    BILLING_CITY = account.city,
    BILLING_COUNTRY = account.country,
    CAMPAIGN_SOURCE = rng:chance(30) and rng:pick(CAMPAIGNS) or nil,
    COMPETITORS = competitors_for(rng),
  }
  r._pos = i
  return r
end

-- Per-worker cache: a data set is generated once per (seed, size).
local cache = {}

function data.dataset(seed, size)
  local key = seed .. ":" .. size
  local rows = cache[key]
  if not rows then
    rows = {}
    for i = 1, size do rows[i] = data.record(seed, i) end
    cache[key] = rows
  end
  return rows
end

-- Changes to a data set made through POST /__fake/data (shared by the workers; the
-- nginx side sets data.changes_of(seed) -> { version, add, add_close_date, remove_every }
-- or nil). Outside nginx there are none.
data.changes_of = function() return nil end

local variants = {}

-- The rows of a data set as they are now: the generated ones, without every
-- remove_every-th one (by position), plus `add` more records (positions size+1...),
-- whose close date is add_close_date when given. Cached per change version.
function data.current(seed, size)
  local ch = data.changes_of(seed)
  if not ch then return data.dataset(seed, size) end
  local key = seed .. ":" .. size .. ":" .. tostring(ch.version)
  local rows = variants[key]
  if rows then return rows end
  for k in pairs(variants) do
    if k:match("^" .. seed .. ":" .. size .. ":") then variants[k] = nil end
  end
  rows = {}
  local every = tonumber(ch.remove_every) or 0
  for i, rec in ipairs(data.dataset(seed, size)) do
    if every < 1 or i % every ~= 0 then rows[#rows + 1] = rec end
  end
  for k = 1, tonumber(ch.add) or 0 do
    local rec = data.record(seed, size + k)
    if ch.add_close_date then rec.CLOSE_DATE = ch.add_close_date end
    rows[#rows + 1] = rec
  end
  variants[key] = rows
  return rows
end

local function percent_label(v)
  return util.number_label(v, v == math.floor(v) and 0 or 2) .. "%"
end

-- Raw value -> {value, label} per the column kind.
local CELL = {
  name = function(v) return v.id, v.name end,
  currency = function(v) return { amount = v, currency = "USD" }, util.money(v) end,
  date = function(v) return v, util.date_label(v) end,
  datetime = function(v) return v, util.date_label(v) end,
  percent = function(v) return v, percent_label(v) end,
  int = function(v) return v, util.int_label(v) end,
  double = function(v) return v, util.number_label(v, 2) end,
  boolean = function(v) return v, v and "True" or "False" end,
}

function data.cell(col, raw)
  if raw == nil then return null, "-" end
  local f = CELL[col.kind]
  if f then return f(raw) end
  return raw, raw
end

-- Encoded JSON of one data cell, cached on the record (rows are immutable).
function data.cell_json(rec, col)
  local enc = rec._enc
  if not enc then enc = {}; rec._enc = enc end
  local s = enc[col.name]
  if not s then
    local value, label = data.cell(col, rec[col.name])
    s = util.encode({ value = value, label = label })
    enc[col.name] = s
  end
  return s
end

-- The text a filter or sort compares for name/lookup columns is the name (label).
function data.raw_text(col, raw)
  if raw == nil then return nil end
  if col.kind == "name" then return raw.name end
  return raw
end

return data
