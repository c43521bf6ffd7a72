-- The command line's aggregates (--aggregate, --replace-aggregates, --groups) and report
-- lifecycle commands (create, clone, save, delete-report, fields, operators), through
-- sfreports.cli.main against the fake org: output, exit status, and the bodies sent.
local fakeorg = require "fakeorg"
local cjson = require "cjson"
local cli = require "sfreports.cli"

local R = fakeorg.reports

local function sink()
  local parts = {}
  return { flush = function() return true end, write = function(self, ...)
    for i = 1, select("#", ...) do parts[#parts + 1] = tostring(select(i, ...)) end
    return self
  end, text = function() return table.concat(parts) end }
end

local function reader(text)
  local pos = 1
  return { read = function(_, what)
    if what == "*a" or what == "a" then
      local s = text:sub(pos); pos = #text + 1; return s
    end
    if pos > #text then return nil end
    local line = text:match("^([^\n]*)\n?", pos)
    pos = pos + #line + 1
    return line
  end }
end

describe("sfreports CLI: aggregates and report lifecycle", function()
  local org, TMP

  local function run(args, streams)
    streams = streams or {}
    local out, err = sink(), sink()
    local code = cli.main(args, { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token },
      { stdout = out, stderr = err, stdin = streams.stdin or reader(""), stderr_tty = false,
        stdin_tty = streams.stdin_tty })
    return { code = code, out = out.text(), err = err.text() }
  end

  local function last(method)
    local list = org:bodies()
    for i = #list, 1, -1 do
      if list[i].method == method then return list[i] end
    end
  end

  setup(function()
    org = fakeorg.start()
    TMP = fakeorg.run("mktemp -d /tmp/sfrcli.XXXXXX"):gsub("%s+$", "")
  end)

  teardown(function()
    org:stop()
    fakeorg.run("rm -rf " .. fakeorg.shell_quote(TMP))
  end)

  it("--aggregate adds aggregates; --groups writes one line per group with their labels", function()
    local r = run({ "run", R.summary_1.id, "--aggregate", "avg(AMOUNT)", "--aggregate", "x!AMOUNT",
      "--groups", "--raw" })
    assert.equal(0, r.code, r.err)
    local body = cjson.decode(last("POST").body)
    assert.same({ "s!AMOUNT", "RowCount", "a!AMOUNT", "x!AMOUNT" }, body.reportMetadata.aggregates)
    local lines = {}
    for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal("Stage,Sum of Amount,Record Count,Average Amount,Max of Amount", lines[1])
    -- the last line is the grand total: no stage, 120 rows; its numbers are the library's
    local sfreports = require "sfreports"
    local client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
    local report = assert(client:run_sync(R.summary_1.id, { aggregates = { "a!AMOUNT", "x!AMOUNT" } }))
    client:close()
    local total = report:total("s!AMOUNT").value
    local sum, count, avg, max = lines[#lines]:match("^,([^,]*),([^,]*),([^,]*),([^,]*)$")
    assert.equal(total, tonumber(sum))
    assert.equal("120", count)
    assert.equal(report:total("a!AMOUNT").value, tonumber(avg))
    assert.equal(report:total("x!AMOUNT").value, tonumber(max))
    assert.equal(#report:groups() + 1, #lines)
  end)

  it("--replace-aggregates and --groups in json with --all and query", function()
    local r = run({ "run", R.tabular_5k.id, "--all", "--replace-aggregates", "--aggregate", "count",
      "--aggregate", "unique(Account Name)", "--groups", "--format", "json", "--raw" })
    assert.equal(0, r.code, r.err)
    local list = cjson.decode(r.out)
    assert.equal(1, #list)
    assert.equal(5000, list[1].RowCount)
    assert.is_true(list[1]["u!ACCOUNT_NAME"] > 10)
    local md = TMP .. "/md.json"
    local f = assert(io.open(md, "wb"))
    f:write(cjson.encode({ reportMetadata = { reportType = { type = "Opportunity" },
      detailColumns = { "AMOUNT" }, aggregates = { "RowCount" } } }))
    f:close()
    r = run({ "query", md, "--aggregate", "sum(AMOUNT)", "--groups", "--format", "jsonl" })
    assert.equal(0, r.code, r.err)
    assert.truthy(cjson.decode(r.out)["s!AMOUNT"])
  end)

  it("bad --aggregate text is a usage error; a wrong column is a failure naming the option", function()
    local r = run({ "run", R.summary_1.id, "--aggregate", "median(AMOUNT)" })
    assert.equal(2, r.code)
    assert.matches("%-%-aggregate \"median%(AMOUNT%)\": expected sum%(COLUMN%)", r.err)
    r = run({ "run", R.summary_1.id, "--aggregate", "sum(STAGE_NAME)" })
    assert.equal(1, r.code)
    assert.matches("not allowed on column 'STAGE_NAME'", r.err)
    r = run({ "describe", R.summary_1.id, "--aggregate", "count" })
    assert.equal(2, r.code)
  end)

  it("create, clone, save, fields, operators, delete-report", function()
    local md = TMP .. "/create.json"
    local f = assert(io.open(md, "wb"))
    f:write('{"reportMetadata":{"name":"CLI made","reportType":{"type":"Opportunity"},'
      .. '"detailColumns":["OPPORTUNITY_NAME","AMOUNT"],"groupingsDown":[],"aggregates":["RowCount"]}}')
    f:close()
    local r = run({ "create", md })
    assert.equal(0, r.code, r.err)
    local id = r.out:match("^(%w+)\n$")
    assert.truthy(id)
    assert.matches("created report " .. id .. " %(CLI made%)", r.err)
    assert.equal('{"reportMetadata":{"aggregates":["RowCount"],"detailColumns":["OPPORTUNITY_NAME","AMOUNT"],'
      .. '"groupingsDown":[],"name":"CLI made","reportType":{"type":"Opportunity"}}}', last("POST").body)

    r = run({ "clone", id, "--name", "CLI copy", "--format", "json" })
    assert.equal(0, r.code, r.err)
    local copy = cjson.decode(r.out).reportMetadata
    assert.equal("CLI copy", copy.name)
    assert.equal('{"reportMetadata":{"name":"CLI copy"}}', last("POST").body)

    r = run({ "save", copy.id, "--filter", "AMOUNT > 1000", "--aggregate", "max(AMOUNT)", "--name", "CLI saved" })
    assert.equal(0, r.code, r.err)
    assert.equal(copy.id .. "\n", r.out)
    local patch = cjson.decode(last("PATCH").body).reportMetadata
    assert.same({ "RowCount", "x!AMOUNT" }, patch.aggregates)
    assert.equal("CLI saved", patch.name)
    assert.same({ { column = "AMOUNT", operator = "greaterThan", value = "1000" } }, patch.reportFilters)

    r = run({ "save", copy.id })
    assert.equal(2, r.code)
    r = run({ "clone", id })
    assert.equal(2, r.code)
    assert.matches("clone needs %-%-name", r.err)

    r = run({ "fields", id, "--format", "csv" })
    assert.equal(0, r.code, r.err)
    assert.matches("^name,label,type,group\n", r.out)
    assert.matches("\nAMOUNT,Amount,currency,Opportunity Information\n", r.out)
    r = run({ "fields", id, "--intersect", R.summary_1.id, "--format", "csv" })
    assert.equal(0, r.code, r.err)
    assert.equal('{"intersectWith":["' .. R.summary_1.id .. '"]}', last("POST").body)

    r = run({ "operators", "--format", "csv" })
    assert.equal(0, r.code, r.err)
    assert.matches("\nmultipicklist,includes,", r.out)

    -- delete-report: not a terminal and no --yes: usage error, nothing sent
    local n = #org:bodies()
    r = run({ "delete-report", copy.id })
    assert.equal(2, r.code)
    assert.matches("give %-%-yes", r.err)
    -- a terminal: asks; "n" keeps it
    r = run({ "delete-report", copy.id }, { stdin_tty = true, stdin = reader("n\n") })
    assert.equal(1, r.code)
    assert.matches("delete report " .. copy.id .. " for good%? .*%[y/N%] sfreports: not deleted", r.err)
    assert.equal(n, #org:bodies())
    r = run({ "delete-report", copy.id }, { stdin_tty = true, stdin = reader("y\n") })
    assert.equal(0, r.code, r.err)
    assert.equal("DELETE", last("DELETE").method)
    -- gone: a 404 failure
    r = run({ "delete-report", copy.id, "--yes" })
    assert.equal(1, r.code)
    assert.matches("404", r.err)
    r = run({ "delete-report", id, "-y" })
    assert.equal(0, r.code, r.err)
  end)
end)
