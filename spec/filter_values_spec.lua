-- Specs of the filter value rule (issue 15): every value given is one value, so a value
-- holding a comma is quoted for Salesforce; several values are a Lua list; F.raw() sends
-- the API's own comma syntax verbatim. Exact JSON, with and without describe.
local json = require "sfreports.json"
local F = require "sfreports.filters"

local fixtures = require "fixtures"

-- The fixture decoded (the first value only: fixtures.load also gives the text).
local function fixture(name) return (fixtures.load(name)) end

local TAB = fixture("describe_tabular_docderived.json")

-- The value string the first filter of F.build(expr) carries.
local function built_value(expr)
  return F.build(expr).reportFilters[1].value
end

-- The value string prepare() sends for the run's first (only) filter on TAB.
local function prepared_value(filters)
  local md = assert(F.prepare({ filters = filters }, TAB))
  return md.reportFilters[#md.reportFilters].value
end

-- Asserts that fn(...) raises a string error containing `text`.
local function assert_raises(text, fn, ...)
  local ok, msg = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_string(msg)
  assert.truthy(msg:find(text, 1, true), "expected '" .. text .. "' in: " .. msg)
end

describe("filter values", function()
  it("quote a single value that holds a comma", function()
    assert.equals('"Acme, Inc."', built_value(F.contains("ACCOUNT.NAME", "Acme, Inc.")))
    assert.equals('{"reportFilters":[{"column":"ACCOUNT.NAME","operator":"contains","value":"\\"Acme, Inc.\\""}]}',
      json.encode(F.build(F.contains("ACCOUNT.NAME", "Acme, Inc."))))
  end)

  it("double the quotes inside a quoted value, and leave a value without a comma as it is", function()
    assert.equals('"say ""hi"", twice"', built_value(F.eq("NOTE", 'say "hi", twice')))
    assert.equals('say "hi"', built_value(F.eq("NOTE", 'say "hi"')))
    assert.equals("Acme Inc.", built_value(F.eq("NOTE", "Acme Inc.")))
    assert.equals("", built_value(F.ne("NOTE", "")))
  end)

  it("join a list of values with commas, each quoted when it holds one", function()
    assert.equals('"Acme, Inc.",Globex', built_value(F.eq("ACCOUNT_NAME", { "Acme, Inc.", "Globex" })))
    assert.equals("Closed Won,Closed Lost", built_value(F.eq("STAGE_NAME", { "Closed Won", "Closed Lost" })))
  end)

  it("apply the same rule to API-shaped tables and F.filter (what the CLI's --filter builds)", function()
    assert.equals('"Acme, Inc."',
      built_value({ { column = "ACCOUNT_NAME", operator = "contains", value = "Acme, Inc." } }))
    assert.equals('"Acme, Inc."', built_value(F.filter("ACCOUNT_NAME", "contains", "Acme, Inc.")))
  end)

  it("apply the rule in prepare, against describe", function()
    assert.equals('"Acme, Inc."', prepared_value(F.contains("Account Name", "Acme, Inc.")))
    assert.equals('"Acme, Inc."',
      prepared_value({ { column = "ACCOUNT_NAME", operator = "equals", value = "Acme, Inc." } }))
    assert.equals('"Acme, Inc.",Globex', prepared_value(F.eq("ACCOUNT_NAME", { "Acme, Inc.", "Globex" })))
  end)

  it("send F.raw() verbatim: the API's own comma-separated form", function()
    assert.equals("Closed Won,Closed Lost", built_value(F.ne("STAGE_NAME", F.raw("Closed Won,Closed Lost"))))
    assert.equals('"Acme, Inc.",Globex', built_value(F.eq("ACCOUNT_NAME", F.raw('"Acme, Inc.",Globex'))))
    assert.equals("Closed Won,Closed Lost",
      built_value({ { column = "STAGE_NAME", operator = "notEqual", value = F.raw("Closed Won,Closed Lost") } }))
    assert.equals("Closed Won,Closed Lost", prepared_value(F.ne("Stage", F.raw("Closed Won,Closed Lost"))))
    assert.equals("sfreports.filters.raw(a,b)", tostring(F.raw("a,b")))
  end)

  it("still check the column and operator of a raw value (not the value itself)", function()
    local res, err = F.prepare({ filters = F.eq("STAGE_NAM", F.raw("a,b")) }, TAB)
    assert.is_nil(res)
    assert.equals("invalid", err.kind)
    assert.matches("unknown column 'STAGE_NAM'", err.message, 1, true)
    -- a date column takes the raw text as it is (two ISO dates, the API's form)
    assert.equals("2024-01-01,2024-02-01", prepared_value(F.eq("CLOSE_DATE", F.raw("2024-01-01,2024-02-01"))))
  end)

  it("raise on a raw value that is not a string, or inside a list", function()
    assert_raises("sfreports.filters.raw: expected the API's value string, got number", F.raw, 5)
    assert_raises("sfreports.filters.raw: expected the API's value string, got nil", F.raw)
    assert_raises("sfreports.filters.eq: cannot use a raw() value inside a list of values",
      F.eq, "A", { F.raw("a,b") })
  end)
end)
