-- luacheck: std +busted
-- Bad shapes are errors, never complete reports (issue 15): sfreports.report.new turns
-- every decoded body that is not a report result into nil and a `decode` error naming
-- what is wrong, without raising; truncation and details are read strictly; int values
-- are integers on Lua 5.3+. Unit cases over decoded tables, then the same bodies sent by
-- the fake org (its `body` fault) through the client, over real HTTP.
local cjson = require "cjson"
local report = require "sfreports.report"
local writers = require "sfreports.writers"
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"

local null = cjson.null

-- A valid TABULAR result with one string column and one int column, as JSON text with
-- `%s` where the T!T rows go, so that a case can break one part of it.
local function tabular_json(rows, extra)
  return '{"allData":true,"hasDetailRows":true' .. (extra or "") .. ','
    .. '"groupingsDown":{"groupings":[]},"groupingsAcross":{"groupings":[]},'
    .. '"reportMetadata":{"reportFormat":"TABULAR","detailColumns":["NAME","AGE"],"aggregates":["RowCount"]},'
    .. '"reportExtendedMetadata":{"detailColumnInfo":{"NAME":{"label":"Name","dataType":"string"},'
    .. '"AGE":{"label":"Age","dataType":"int"}},'
    .. '"aggregateColumnInfo":{"RowCount":{"label":"Record Count","dataType":"int"}}},'
    .. '"factMap":{"T!T":{"aggregates":[{"label":"1","value":1}],"rows":[' .. (rows or "") .. ']}}}'
end

local GOOD_ROW = '{"dataCells":[{"label":"Acme","value":"Acme"},{"label":"4","value":4}]}'

-- Bodies that must be refused, with a piece of the message that names what is wrong.
local REFUSED = {
  { "null", "expected a JSON object, got null" },
  { "true", "expected a JSON object, got true" },
  { "false", "expected a JSON object, got false" },
  { '"a report"', "expected a JSON object, got a string" },
  { "42", "expected a JSON object, got a number" },
  { "{}", "expected a JSON object with a factMap, got an empty object or array" },
  { "[]", "expected a JSON object with a factMap, got an empty object or array" },
  { "[1,2]", "expected a JSON object, got an array" },
  { '{"allData":true,"reportMetadata":{}}', "report result: no factMap" },
  { '{"attributes":{"type":"ReportInstance","status":"Running"},"allData":false}',
    'no factMap (instance status "Running"' },
  { '{"factMap":null}', "report result: no factMap" },
  { '{"factMap":"T!T"}', "factMap is a string, expected an object" },
  { '{"factMap":[]}', "factMap is empty" },
  { '{"factMap":{}}', "factMap is empty" },
  { '{"factMap":[{"rows":[]}]}', "factMap is an array, expected an object" },
  { '{"factMap":{"T!T":"rows"}}', 'factMap["T!T"] is a string, expected an object' },
  { '{"factMap":{"T!T":{"rows":"none"}}}', 'factMap["T!T"].rows is a string, expected an array' },
  { '{"factMap":{"T!T":{"rows":{"a":{"dataCells":[]}}}}}', 'factMap["T!T"].rows is an object, expected an array' },
  { tabular_json(GOOD_ROW .. ",5"), 'factMap["T!T"].rows[2] is a number, expected an object' },
  { tabular_json('{"cells":[]}'), 'factMap["T!T"].rows[1].dataCells is missing, expected an array' },
  { tabular_json('{"dataCells":null}'), 'factMap["T!T"].rows[1].dataCells is null, expected an array' },
  { tabular_json('{"dataCells":{"NAME":"x"}}'), 'factMap["T!T"].rows[1].dataCells is an object, expected an array' },
  { tabular_json('{"dataCells":[{"label":"x","value":"x"},7]}'),
    'factMap["T!T"].rows[1].dataCells[2] is a number, expected an object' },
  { tabular_json('{"dataCells":[["x","x"]]}'), 'factMap["T!T"].rows[1].dataCells[1] is an array, expected an object' },
  { '{"factMap":{"T!T":{"aggregates":5}}}', 'factMap["T!T"].aggregates is a number, expected an array' },
  { '{"factMap":{"T!T":{"aggregates":[null]}}}', 'factMap["T!T"].aggregates[1] is null, expected an object' },
  { '{"reportMetadata":"TABULAR","factMap":{"T!T":{}}}', "reportMetadata is a string, expected an object" },
  { '{"reportMetadata":{"detailColumns":"NAME,AGE"},"factMap":{"T!T":{}}}',
    "reportMetadata.detailColumns is a string, expected an array" },
  { '{"reportExtendedMetadata":[1],"factMap":{"T!T":{}}}', "reportExtendedMetadata is an array, expected an object" },
  { '{"reportExtendedMetadata":{"detailColumnInfo":true},"factMap":{"T!T":{}}}',
    "reportExtendedMetadata.detailColumnInfo is true, expected an object" },
  { '{"attributes":"Report","factMap":{"T!T":{}}}', "attributes is a string, expected an object" },
  { '{"groupingsDown":[{"key":"0"}],"factMap":{"T!T":{}}}', "groupingsDown is an array, expected an object" },
  { '{"groupingsDown":{"groupings":{"key":"0"}},"factMap":{"T!T":{}}}',
    "groupingsDown.groupings is an object, expected an array" },
  { '{"groupingsAcross":{"groupings":[{"key":"0","groupings":[7]}]},"factMap":{"T!T":{}}}',
    "groupingsAcross.groupings[1].groupings[1] is a number, expected an object" },
  { '{"factMap":{"T!T\\u001b[2J":"x"}}', 'factMap["T!T?[2J"] is a string' },
}

local function decode(text)
  return cjson.decode(text)
end

local function csv_of(r, opts)
  local parts = {}
  assert(writers.csv(r, function(s) parts[#parts + 1] = s end, opts))
  return table.concat(parts)
end

describe("sfreports.report bad shapes", function()
  describe("refused bodies", function()
    for _, case in ipairs(REFUSED) do
      it("refuses " .. case[1]:sub(1, 70), function()
        local ok, r, err = pcall(report.new, decode(case[1]))
        assert.is_true(ok, r) -- never a raise
        assert.is_nil(r)
        assert.are.equal("decode", err.kind)
        assert.is_false(err.retryable)
        assert.is_truthy(err.message:find(case[2], 1, true), err.message)
        assert.is_nil(err.message:find("%c"))
        assert.is_truthy(tostring(err):find(case[2], 1, true))
      end)
    end

    it("refuses a dashboard component whose reportResult is not a report", function()
      local r, err = report.new({ componentId = "01a", reportResult = {} })
      assert.is_nil(r)
      assert.are.equal("report result: expected a JSON object with a factMap, got an empty object or array",
        err.message)
    end)

    it("bounds a hostile fact-map key in the message", function()
      local key = string.rep("K", 5000) .. "!T"
      local _, err = report.new({ factMap = { [key] = 1 } })
      assert.is_true(#err.message < 200)
      assert.is_truthy(err.message:find('"' .. string.rep("K", 40) .. '..."', 1, true))
    end)

    it("names the report and instance a refused result belongs to, when their ids are well formed", function()
      local _, err = report.new(decode('{"attributes":{"type":"ReportInstance","id":"0LGR00000000He3OAE",'
        .. '"reportId":"00OR0000000K2UeMAK","status":"Success"},"factMap":{"T!T":5}}'))
      assert.are.same({ "00OR0000000K2UeMAK", "0LGR00000000He3OAE" }, { err.report_id, err.instance_id })
      _, err = report.new(decode('{"reportMetadata":{"id":"not an id"},"factMap":{"T!T":5}}'))
      assert.is_nil(err.report_id)
    end)

    it("accepts the same result when its parts have the right shape", function()
      local r = assert(report.new(decode(tabular_json(GOOD_ROW))))
      assert.are.equal(1, r:row_count())
      assert.are.equal("Name,Age\nAcme,4\n", csv_of(r))
    end)
  end)

  describe("all_data", function()
    for _, v in ipairs({ '"false"', "null", "0", "1", '"true"', "false", "{}" }) do
      it("reads allData " .. v .. " as truncated", function()
        local r = assert(report.new(decode(tabular_json(GOOD_ROW):gsub('"allData":true', '"allData":' .. v))))
        assert.is_false(r.all_data)
        assert.is_true(r.truncated)
      end)
    end

    it("reads a missing allData as truncated", function()
      local r = assert(report.new(decode(tabular_json(GOOD_ROW):gsub('"allData":true,', ""))))
      assert.is_false(r.all_data)
    end)

    it("reads only allData true, without an exceeded row limit, as complete", function()
      local cases = { ["null"] = true, ["false"] = true, ["true"] = false, ['"true"'] = false, ["1"] = false }
      for v, want in pairs(cases) do
        local r = assert(report.new(decode(tabular_json(GOOD_ROW, ',"hasExceededTabularRowLimit":' .. v))))
        assert.are.equal(want, r.all_data, v)
      end
      assert.is_true(report.new(decode(tabular_json(GOOD_ROW))).all_data)
    end)
  end)

  describe("has_details", function()
    local function summary_only(has_detail_rows)
      return decode(tabular_json(""):gsub('"hasDetailRows":true', '"hasDetailRows":' .. has_detail_rows)
        :gsub(',"rows":%[%]', ""))
    end

    it("is false when no fact-map entry has a rows key, whatever hasDetailRows says", function()
      for _, v in ipairs({ "true", "false", "null" }) do
        local d = summary_only(v)
        assert.is_nil(d.factMap["T!T"].rows)
        assert.is_false(assert(report.new(d)).has_details, v)
      end
    end)

    it("is true for an empty detail section, false when hasDetailRows is false", function()
      assert.is_true(report.new(decode(tabular_json(""))).has_details)
      local d = decode(tabular_json(GOOD_ROW):gsub('"hasDetailRows":true', '"hasDetailRows":false'))
      assert.is_false(report.new(d).has_details)
    end)

    it("is false for a report without detail columns", function()
      local d = decode(tabular_json('{"dataCells":[]}'))
      d.reportMetadata.detailColumns = {}
      local r = assert(report.new(d))
      assert.is_false(r.has_details)
      assert.are.equal(0, #r:columns())
    end)
  end)

  describe("labels that are not text", function()
    local body = tabular_json('{"dataCells":[{"label":5,"value":"five"},{"label":4.5,"value":4.5}]},'
      .. '{"dataCells":[{"label":true,"value":"yes"},{"label":{"x":1},"value":7}]}')

    it("turns a number label into text and reads other non-text labels as null", function()
      local d = decode(body)
      local r = assert(report.new(d))
      local rows = {}
      for row in r:rows() do rows[#rows + 1] = row end
      assert.are.same({ "5", "4.5" }, { rows[1]:label(1), rows[1]:label(2) })
      assert.are.same({ null, null }, { rows[2]:label(1), rows[2]:label(2) })
      assert.are.same({ "yes", 7 }, { rows[2]:value(1), rows[2]:value(2) })
      -- the writers read data_cells: the row with number labels gets a copy with text
      assert.are.equal("5", rows[1].data_cells[1].label)
      assert.are.equal(d.factMap["T!T"].rows[2].dataCells, rows[2].data_cells)
      -- and the decoded table is untouched
      assert.are.equal(5, d.factMap["T!T"].rows[1].dataCells[1].label)
      assert.are.equal(d, r.raw)
    end)

    it("is written by every writer without raising, numbers as the server wrote them", function()
      local r = assert(report.new(decode(body)))
      assert.are.equal("Name,Age\n5,4.5\nyes,7\n", csv_of(r))
      for _, fmt in ipairs({ "csv", "tsv", "json", "jsonl" }) do
        for _, raw in ipairs({ false, true }) do
          local ok, n = pcall(writers.write, fmt, r, function() end, { raw = raw })
          assert.is_true(ok, n)
          assert.are.equal(2, n)
        end
      end
    end)

    it("converts number labels of groups and aggregates too", function()
      local d = decode(tabular_json(GOOD_ROW))
      d.factMap["T!T"].aggregates[1].label = 1
      d.groupingsDown.groupings = { { key = "0", value = 3, label = 3, groupings = {} } }
      d.factMap["0!T"] = { aggregates = { { value = 1, label = 1 } }, rows = d.factMap["T!T"].rows }
      local r = assert(report.new(d))
      assert.are.equal("1", r:total(1).label)
      assert.are.equal("3", r:group("0!T").down[1].label)
      assert.are.equal("Grouping (down 1),Name,Age\n3,Acme,4\n", csv_of(r))
    end)
  end)

  describe("integer fidelity", function()
    local mtype = math.type -- Lua 5.3+; on 5.1 and LuaJIT there is one number type

    local function assert_integer(v, want)
      assert.are.equal(want, v)
      if mtype then
        assert.are.equal("integer", mtype(v))
        assert.are.equal(tostring(want), tostring(v))
      end
    end

    it("reads int cells, int groups and count aggregates as integers", function()
      local second = '{"dataCells":[{"label":"B","value":"B"},{"label":"12","value":"12"}]}'
      local d = decode(tabular_json(GOOD_ROW .. "," .. second))
      d.reportMetadata.aggregates = { "RowCount", "u!NAME", "B0#u!NAME", "s!AGE", "a!AGE" }
      d.reportExtendedMetadata.aggregateColumnInfo = { RowCount = {}, ["s!AGE"] = { dataType = "int" },
                                                      ["a!AGE"] = { dataType = "double" } }
      d.factMap["T!T"].aggregates = { { value = 2, label = "2" }, { value = 2, label = "2" },
                                      { value = 2, label = "2" },
                                      { value = 16, label = "16" }, { value = 8.0, label = "8" } }
      local r = assert(report.new(d))
      local ages = {}
      for row in r:rows() do ages[#ages + 1] = row:value("AGE") end
      assert_integer(ages[1], 4)
      assert_integer(ages[2], 12)
      for i = 1, 4 do assert_integer(r:total(i).value, ({ 2, 2, 2, 16 })[i]) end
      -- other numeric types keep what the decoder gives (lua-cjson: floats)
      assert.are.equal(8, r:total(5).value)
      if mtype then assert.are.equal("float", mtype(r:total(5).value)) end
    end)

    it("keeps an int value with a fraction, or beyond the integer range, as it is", function()
      local d = decode(tabular_json('{"dataCells":[{"label":"a","value":"a"},{"label":"4.5","value":4.5}]},'
        .. '{"dataCells":[{"label":"b","value":"b"},{"label":"big","value":1e300}]}'))
      local r = assert(report.new(d))
      local iter = r:rows()
      assert.are.equal(4.5, iter():value(2))
      assert.are.equal(1e300, iter():value(2))
    end)

    it("writes integers without a fraction", function()
      local r = assert(report.new(decode(tabular_json(GOOD_ROW))))
      assert.are.equal("Name,Age\nAcme,4\n", csv_of(r, { raw = true }))
      assert.are.equal("4", tostring(r:rows()():value("AGE")))
    end)
  end)
end)

describe("sfreports.report bad shapes over HTTP (fake org)", function()
  local org, client
  local TAB = fakeorg.reports.tabular_small.id

  setup(function()
    org = fakeorg.start({ tls = false })
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token, retries = 0 }))
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
    org:control("config", { async_delay = 0 })
  end)

  local function serve_once(body, path)
    local answer = org:control("fault", { kind = "body", body = body, path = path or ("/reports/" .. TAB) })
    assert.is_true(answer.ok)
  end

  it("refuses every bad body sent to run_sync with a decode error, then runs normally", function()
    for _, case in ipairs(REFUSED) do
      -- left out: a body of `false` never reaches the model, Client:request's
      -- `if not decoded` takes it for a failure and returns nil, nil (client.lua)
      if case[1] ~= "false" then
        serve_once(case[1])
        local before = org:stats().requests
        local r, err = client:run_sync(TAB)
        assert.is_nil(r, case[1])
        assert.are.equal("decode", err.kind, case[1])
        assert.is_truthy(err.message:find(case[2], 1, true), err.message)
        assert.are.equal(before + 1, org:stats().requests) -- one answer seen, no retry
      end
    end
    local r = assert(client:run_sync(TAB))
    assert.is_true(r.all_data)
    assert.are.equal(40, r:row_count())
  end)

  it("refuses a bad body from fetch_instance and from run_many", function()
    local inst = assert(client:run_async(TAB))
    serve_once("[]", "/instances/" .. inst.id)
    local before = org:stats().requests
    local r, err = client:fetch_instance(TAB, inst.id)
    assert.is_nil(r)
    assert.are.equal("decode", err.kind)
    assert.are.equal(before + 1, org:stats().requests)

    serve_once(tabular_json(GOOD_ROW .. ',"row"'))
    local reports, errs = client:run_many({ TAB })
    assert.is_nil(reports[1])
    assert.are.equal("decode", errs[1].kind)
    assert.are.equal('report result: factMap["T!T"].rows[2] is a string, expected an object', errs[1].message)
  end)

  it("reads a served allData of \"false\" as truncated and a body without rows as no details", function()
    serve_once((tabular_json(GOOD_ROW):gsub('"allData":true', '"allData":"false"')))
    local r = assert(client:run_sync(TAB))
    assert.is_false(r.all_data)
    local s = assert(client:run_sync(fakeorg.reports.summary_1.id, { details = false }))
    assert.is_true(s.all_data)
    assert.is_false(s.has_details)
  end)

  it("gives integers for the fake org's int column and its counts", function()
    local r = assert(client:query({ reportType = { type = "Opportunity" }, reportFormat = "TABULAR",
      detailColumns = { "OPPORTUNITY_NAME", "AGE" }, aggregates = { "RowCount", "u!TYPE", "s!AMOUNT" } }))
    local row = r:rows()()
    local age, count, types = row:value("AGE"), r:total("RowCount").value, r:total("u!TYPE").value
    assert.are.equal(5000, count)
    assert.is_true(types > 1 and types < 10)
    assert.is_true(age >= 0 and age % 1 == 0)
    if math.type then
      assert.are.same({ "integer", "integer", "integer" }, { math.type(age), math.type(count), math.type(types) })
      assert.are.equal("5000", tostring(count))
    end
  end)
end)
