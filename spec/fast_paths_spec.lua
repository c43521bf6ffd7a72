-- luacheck: std +busted
-- The fast paths of issue 16's performance work agree with the careful ones:
--   * sfreports.report's shape scan (no call per cell) passes exactly the results whose
--     cells are objects with text labels (report.text_labels); everything else goes to
--     the careful check, which refuses bad shapes with the same messages as before;
--   * the CSV/TSV writers' inlined label lane (row.text_labels) writes the same bytes as
--     the per-column formatters;
--   * the C core's decode leaves the collector as it found it (paused only inside).
local cjson = require "cjson"
local report = require "sfreports.report"
local writers = require "sfreports.writers"
local core = require "sfreports.core"

-- A TABULAR result: NAME (string), AMOUNT (currency), STAGE (picklist); rows given as
-- JSON text of their cells.
local function tabular(rows_json, aggs)
  return cjson.decode('{"allData":true,"hasDetailRows":true,'
    .. '"groupingsDown":{"groupings":[]},"groupingsAcross":{"groupings":[]},'
    .. '"reportMetadata":{"reportFormat":"TABULAR","detailColumns":["NAME","AMOUNT","STAGE"],'
    .. '"aggregates":["RowCount"]},'
    .. '"reportExtendedMetadata":{"detailColumnInfo":{"NAME":{"label":"Name","dataType":"string"},'
    .. '"AMOUNT":{"label":"Amount","dataType":"currency"},"STAGE":{"label":"Stage","dataType":"picklist"}},'
    .. '"aggregateColumnInfo":{"RowCount":{"label":"Record Count","dataType":"int"}}},'
    .. '"factMap":{"T!T":{"aggregates":' .. (aggs or '[{"label":"2","value":2}]') .. ',"rows":['
    .. rows_json .. ']}}}')
end

local PLAIN = table.concat({
  '{"dataCells":[{"label":"Acme, Inc.","value":"001Fk00000AcmeAAA"},'
    .. '{"label":"$1,234.50","value":{"amount":1234.5,"currency":"USD"}},{"label":"=Won","value":"Won"}]}',
  '{"dataCells":[{"label":"Say \\"hi\\"\\nthere","value":"x"},'
    .. '{"label":"-","value":{"amount":null,"currency":"USD"}},{"label":"-","value":null}]}',
  '{"dataCells":[{"label":"+1","value":"+1"},{"label":"$0.00","value":{"amount":0,"currency":null}},'
    .. '{"label":"@x\\ty","value":"@x"}]}',
}, ",")

describe("report shape scan", function()
  it("marks a result whose cells are all objects with text labels", function()
    local r = assert(report.new(tabular(PLAIN)))
    assert.is_true(r.text_labels)
    local n = 0
    for row in r:rows() do
      n = n + 1
      assert.is_true(row.text_labels)
    end
    assert.are.equal(3, n)
  end)

  -- valid results the scan leaves to the careful check: read as before, not marked
  local REST = ',{"label":"1","value":1},{"label":"b","value":"b"}]}'
  local CAREFUL = {
    { "a null label", '{"dataCells":[{"label":null,"value":"a"}' .. REST },
    { "a missing label", '{"dataCells":[{"value":"a"}' .. REST },
    { "a number label", '{"dataCells":[{"label":42,"value":42}' .. REST },
    { "a boolean label", '{"dataCells":[{"label":true,"value":"a"}' .. REST },
    { "an object label", '{"dataCells":[{"label":{"x":1},"value":"a"}' .. REST },
  }
  for _, case in ipairs(CAREFUL) do
    it("reads a result with " .. case[1] .. " through the careful check", function()
      local r, err = report.new(tabular(case[2]))
      assert.is_nil(err)
      assert.is_false(r.text_labels)
      local row = r:rows()()
      assert.is_false(row.text_labels)
      assert.are.equal(3, #row.cells)
    end)
  end

  it("leaves an aggregate without a text label to the careful check (still a report)", function()
    local r = assert(report.new(tabular(PLAIN, '[{"label":null,"value":2}]')))
    assert.is_false(r.text_labels)
    assert.are.equal(2, r:total(1).value)
  end)

  -- bad shapes the scan stops at (by a raise or a mismatch): the careful check's message
  local REFUSED = {
    { "a string cell", '{"dataCells":["Acme",{"label":"1","value":1}]}',
      "dataCells[1] is a string, expected an object" },
    { "a number cell", '{"dataCells":[5]}', "dataCells[1] is a number, expected an object" },
    { "a null cell", '{"dataCells":[null]}', "dataCells[1] is null, expected an object" },
    { "a boolean cell", '{"dataCells":[false]}', "dataCells[1] is false, expected an object" },
    { "an array cell", '{"dataCells":[["a","b"]]}', "dataCells[1] is an array, expected an object" },
    { "a string row", '"row"', "rows[1] is a string, expected an object" },
    { "an array row", '[{"label":"a","value":"a"}]', "rows[1] is an array, expected an object" },
    { "string dataCells", '{"dataCells":"abc"}', "dataCells is a string, expected an array" },
    { "object dataCells", '{"dataCells":{"a":{"label":"x"}}}',
      "dataCells is an object, expected an array" },
    { "numeric dataCells", '{"dataCells":3}', "dataCells is a number, expected an array" },
  }
  for _, case in ipairs(REFUSED) do
    it("refuses " .. case[1] .. " with the careful check's message", function()
      local r, err = report.new(tabular(case[2]))
      assert.is_nil(r)
      assert.are.equal("decode", err.kind)
      assert.truthy(err.message:find(case[3], 1, true), err.message)
    end)
  end

  it("gets the same answer from the C core's scan and the Lua one", function()
    local shape = require "sfreports.report.shape"
    local function answers(fm)
      local ok, lua = pcall(shape.scan_lua, fm)
      return (ok and lua) == true, core.scan_facts(fm, cjson.null)
    end
    local lua, c = answers(tabular(PLAIN).factMap)
    assert.is_true(lua)
    assert.is_true(c)
    local fms = {}
    for _, case in ipairs(CAREFUL) do fms[#fms + 1] = tabular(case[2]).factMap end
    for _, case in ipairs(REFUSED) do fms[#fms + 1] = tabular(case[2]).factMap end
    for _, aggs in ipairs({ '[{"label":null,"value":2}]', '["2"]', '{"a":1}', '[[1]]', '"x"' }) do
      fms[#fms + 1] = tabular(PLAIN, aggs).factMap
    end
    for _, fm in ipairs({ { ["T!T"] = "rows" }, { ["T!T"] = { 1 } }, { ["T!T"] = { rows = { a = 1 } } },
      { ["T!T"] = { rows = "r" } }, { ["T!T"] = { rows = { { dataCells = { { label = 1 } } } } } } }) do
      fms[#fms + 1] = fm
    end
    for i, fm in ipairs(fms) do
      lua, c = answers(fm)
      assert.is_false(lua, i)
      assert.is_false(c, i)
    end
    -- and alike on what is valid without being plain: null/absent rows and aggregates
    for _, fm in ipairs({ { ["T!T"] = {} }, { ["T!T"] = { rows = cjson.null, aggregates = cjson.null } },
      { ["0!T"] = { rows = {}, aggregates = { { label = "1" } } } } }) do
      lua, c = answers(fm)
      assert.is_true(lua)
      assert.is_true(c)
    end
  end)

  it("refuses a string aggregate and a string fact-map entry", function()
    local r, err = report.new(tabular(PLAIN, '["2"]'))
    assert.is_nil(r)
    assert.truthy(err.message:find('factMap["T!T"].aggregates[1] is a string, expected an object', 1, true))
    r, err = report.new({ factMap = { ["T!T"] = "rows" } })
    assert.is_nil(r)
    assert.truthy(err.message:find('factMap["T!T"] is a string, expected an object', 1, true))
  end)

  it("names a bad grouping node by its path, at any depth", function()
    local d = tabular(PLAIN)
    d.groupingsDown = { groupings = { { key = "0", groupings = { { key = "0_0", groupings = {} }, 7 } } } }
    local r, err = report.new(d)
    assert.is_nil(r)
    assert.truthy(err.message:find("groupingsDown.groupings[1].groupings[2] is a number, expected an object", 1, true),
      err.message)
    d.groupingsDown = { groupings = { { key = "0", groupings = { { key = "0_0", groupings = "none" } } } } }
    r, err = report.new(d)
    assert.is_nil(r)
    assert.truthy(err.message:find("groupingsDown.groupings[1].groupings[1].groupings is a string, expected an array",
      1, true), err.message)
  end)

  -- the grouping trees' scan (no call per node) passes trees whose nodes all have a text
  -- key; everything else goes to the careful check, which accepts what is valid
  it("reads grouping trees the scan leaves to the careful check", function()
    for _, nodes in ipairs({
      { { label = "a", groupings = {} } },                       -- no key
      { { key = 0, groupings = { { key = "0_0", groupings = {} } } } }, -- a number key
      { { key = "0", groupings = cjson.null } },                 -- null children
      { { key = "0", groupings = { { key = "0_0" } } } },        -- no children list
    }) do
      local d = tabular(PLAIN)
      d.groupingsAcross = { groupings = nodes }
      assert(report.new(d))
    end
  end)

  it("refuses what the tree scan stops at with the careful check's message", function()
    for _, case in ipairs({
      { { "0" }, "groupingsDown.groupings[1] is a string, expected an object" },
      { { { "0" } }, "groupingsDown.groupings[1] is an array, expected an object" },
      { { key = "0" }, "groupingsDown.groupings is an object, expected an array" },
      { "x", "groupingsDown.groupings is a string, expected an array" },
    }) do
      local d = tabular(PLAIN)
      d.groupingsDown = { groupings = case[1] }
      local r, err = report.new(d)
      assert.is_nil(r)
      assert.truthy(err.message:find(case[2], 1, true), err.message)
    end
    local d = tabular(PLAIN)
    d.groupingsDown = "down"
    local r, err = report.new(d)
    assert.is_nil(r)
    assert.truthy(err.message:find("groupingsDown is a string, expected an object", 1, true), err.message)
  end)
end)

describe("CSV and TSV label lane", function()
  -- The same rows without text_labels (plain tables), so that every cell goes through
  -- the per-column formatters.
  local function general_rows(r)
    local it = r:rows()
    return function()
      local row = it()
      if row == nil then return nil end
      return { data_cells = row.data_cells, groups = row.groups }
    end
  end

  for _, fmt in ipairs({ "csv", "tsv" }) do
    for _, guard in ipairs({ false, true }) do
      it(("writes the same %s as the per-column formatters (formula_guard = %s)"):format(fmt, tostring(guard)),
        function()
          local r = assert(report.new(tabular(PLAIN)))
          assert.is_true(r.text_labels)
          local fast, slow = {}, {}
          assert(writers.write(fmt, r, function(s) fast[#fast + 1] = s end, { formula_guard = guard }))
          assert(writers.write(fmt, general_rows(r), function(s) slow[#slow + 1] = s end,
            { formula_guard = guard, columns = r:columns(), grouping_columns = r:grouping_columns() }))
          assert.are.equal(table.concat(slow), table.concat(fast))
          assert.truthy(#table.concat(fast) > 40)
        end)
    end
  end

  it("writes an empty field for a null value and a currency with a null amount, the label otherwise", function()
    local r = assert(report.new(tabular(PLAIN)))
    local out = {}
    assert(writers.csv(r, function(s) out[#out + 1] = s end))
    local lines = {}
    for l in table.concat(out):gmatch("[^\n]*\n") do lines[#lines + 1] = l end
    assert.are.equal('"Acme, Inc.","$1,234.50",=Won\n', lines[2])
    assert.are.equal('"Say ""hi""\n', lines[3])
    assert.are.equal('there",,\n', lines[4])
  end)
end)

describe("decode and the collector", function()
  local big = cjson.encode({ factMap = { ["T!T"] = { rows = (function()
    local t = {}
    for i = 1, 20000 do t[i] = { dataCells = { { label = "row " .. i, value = i } } } end
    return t
  end)() } } })

  it("decodes a large body whatever the collector's state, and leaves that state as it was", function()
    local v = assert(core.decode(big))
    assert.are.equal(20000, #v.factMap["T!T"].rows)
    if _VERSION ~= "Lua 5.1" then -- the state can be asked on Lua 5.2+ only
      collectgarbage("stop")
      assert.are.equal(20000, #assert(core.decode(big)).factMap["T!T"].rows)
      assert.is_false(collectgarbage("isrunning"))
      collectgarbage("restart")
      v = assert(core.decode(big))
      assert.is_true(collectgarbage("isrunning"))
      local nothing, err = core.decode(big:sub(1, #big - 5))
      assert.is_nil(nothing)
      assert.are.equal("decode", err.kind)
      assert.is_true(collectgarbage("isrunning"))
    end
    assert.are.equal("row 20000", v.factMap["T!T"].rows[20000].dataCells[1].label)
  end)
end)
