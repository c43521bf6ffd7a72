-- luacheck: std +busted
-- `sfreports dashboard list | show | status | refresh` (sfreports.cli.main in process)
-- against the fake org: the summary, a component's rows in any format (byte-identical to
-- the library's writers), -o DIR, filters by label, refresh --wait, exit status 1 when a
-- shown component failed, and usage errors before any request.
local sfreports = require "sfreports"
local writers = require "sfreports.writers"
local cli = require "sfreports.cli"
local core = require "sfreports.core"
local fakeorg = require "fakeorg"

local SALES = "01ZFk00000G0001MAB"
local TEAM1 = "01ZFk00000G0101MAB"

local buffer = require("cli_run").buffer

local function lines_of(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local function csv_of(source, opts)
  local parts = {}
  assert(writers.csv(source, function(s) parts[#parts + 1] = s return true end, opts))
  return table.concat(parts)
end

describe("sfreports dashboard", function()
  local org, client, slept

  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end)
  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)
  before_each(function()
    org:reset()
    slept = 0
  end)

  local function sfr(args)
    local out, err = buffer(), buffer()
    local env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token }
    local code = cli.main(args, env, { stdout = out, stderr = err, stderr_tty = false,
      sleep = function(s) slept = slept + 1; core.sleep(s) end })
    return code, out.text, err.text
  end

  it("lists dashboards", function()
    local code, out = sfr({ "dashboard", "list", "--format", "csv" })
    assert.equal(0, code)
    local lines = lines_of(out)
    assert.equal("id,name,url", lines[1])
    assert.equal(8, #lines)
    assert.truthy(lines[2]:find("^" .. SALES .. ",Sales Overview,"))
  end)

  it("summarises the components and exits 1 because one failed", function()
    local code, out, err = sfr({ "dashboard", "show", SALES, "--format", "csv" })
    assert.equal(1, code)
    local lines = lines_of(out)
    assert.equal("title,id,type,status,rows,error", lines[1])
    assert.equal(5, #lines)
    assert.equal("Open Deals,01aFk00000H0003IAB,FlexTable,DATA,40,", lines[4])
    assert.truthy(lines[5]:find("^Slow Source,01aFk00000H0004IAB,Metric,ERROR,,"))
    assert.truthy(err:find("01aFk00000H0004IAB (Slow Source) failed", 1, true), err)
    assert.equal(1, #lines_of(err))
    -- a dashboard without failures exits 0, in the default table format
    code, out = sfr({ "dashboard", "show", TEAM1 })
    assert.equal(0, code)
    assert.truthy(lines_of(out)[1]:find("^title%s+id%s+type%s+status%s+rows%s+error$"))
  end)

  it("writes a component's rows in any format, as the library's writers do", function()
    local d = assert(client:dashboard(SALES))
    local code, out = sfr({ "dashboard", "show", SALES, "--component", "open deals" })
    assert.equal(0, code)
    assert.equal(csv_of(d:component("Open Deals").report), out)
    code, out = sfr({ "dashboard", "show", SALES, "--component", "01aFk00000H0001IAB", "--raw" })
    assert.equal(0, code)
    assert.equal(csv_of(d:component("Pipeline by Stage"):table(), { raw = true }), out)
    code, out = sfr({ "dashboard", "show", SALES, "--component", "Pipeline Matrix", "--format", "jsonl" })
    assert.equal(0, code)
    assert.equal(d:component("Pipeline Matrix"):table():row_count(), #lines_of(out))
    -- the failed component, and one that does not exist
    local err
    code, out, err = sfr({ "dashboard", "show", SALES, "--component", "Slow Source" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.truthy(err:find("exceeded the time limit", 1, true))
    code, out, err = sfr({ "dashboard", "show", SALES, "--component", "Nope" })
    assert.equal("", out)
    assert.equal(1, code)
    assert.truthy(err:find('"Open Deals" (01aFk00000H0003IAB)', 1, true), err)
  end)

  it("applies filters by label", function()
    local d = assert(client:dashboard(SALES, { filters = { Region = "EMEA", ["Deal Size"] = "Mid-size" } }))
    local code, out = sfr({ "dashboard", "show", SALES, "--filter", "Region=EMEA", "--filter", "deal size = mid-size",
      "--component", "Open Deals", "--format", "csv" })
    assert.equal(0, code)
    assert.equal(csv_of(d:component("Open Deals").report), out)
    assert.is_true(#lines_of(out) - 1 < 40)
    local err
    code, out, err = sfr({ "dashboard", "show", SALES, "--filter", "Region=Mars" })
    assert.equal("", out)
    assert.equal(1, code)
    assert.truthy(err:find('its options: "EMEA", "Americas", "APAC"', 1, true), err)
  end)

  it("writes one file per component with -o DIR", function()
    local dir = fakeorg.run("mktemp -d /tmp/sfr-dash.XXXXXX"):gsub("%s+$", "") .. "/out"
    local code, out, err = sfr({ "dashboard", "show", SALES, "-o", dir })
    assert.equal(1, code, err) -- Slow Source failed
    assert.equal(6, #lines_of(out)) -- the summary table on standard output (header, rule, 4 rows)
    local d = assert(client:dashboard(SALES))
    local files = { "01-pipeline-by-stage.csv", "02-pipeline-matrix.csv", "03-open-deals.csv" }
    for i, name in ipairs(files) do
      assert.equal(csv_of(d.components[i]:table()), fakeorg.read_file(dir .. "/" .. name), name)
    end
    assert.equal(table.concat(files, "\n") .. "\n", (fakeorg.run("ls " .. fakeorg.shell_quote(dir))))
    code = sfr({ "dashboard", "show", TEAM1, "-o", dir, "--format", "jsonl" })
    assert.equal(0, code)
    assert.equal(40, #lines_of(fakeorg.read_file(dir .. "/02-team-deals.jsonl")))
    fakeorg.run("rm -rf " .. fakeorg.shell_quote(dir:gsub("/out$", "")))
  end)

  it("shows the status, starts a refresh, and waits for one", function()
    org:control("config", { dashboard_refresh_delay = 0.5 })
    local code, out = sfr({ "dashboard", "status", SALES, "--format", "csv" })
    assert.equal(0, code)
    assert.equal(5, #lines_of(out))
    assert.truthy(lines_of(out)[2]:find(",IDLE,", 1, true))
    local err
    code, out, err = sfr({ "dashboard", "refresh", TEAM1 })
    assert.equal(0, code)
    assert.equal("", out)
    assert.truthy(err:find("started a refresh", 1, true))
    code, out, err = sfr({ "dashboard", "refresh", TEAM1, "--wait", "--timeout", "30", "--format", "csv" })
    assert.equal(0, code, err)
    assert.truthy(err:find("already in progress", 1, true) == nil)
    assert.equal(3, #lines_of(out))
    assert.is_true(slept >= 1) -- the wait slept through the CLI's sleep
    local whats = {}
    for _, e in ipairs(org:stats().dashboard_log) do whats[#whats + 1] = e.what end
    assert.equal("refresh", whats[2])
    assert.equal("results", whats[#whats])
    -- the component's rows after the wait
    code, out = sfr({ "dashboard", "refresh", TEAM1, "--wait", "--component", "Team Deals", "--format", "jsonl" })
    assert.equal(0, code)
    assert.equal(40, #lines_of(out))
  end)

  it("refuses bad ids and options with exit status 2, before any request", function()
    local cases = {
      { "dashboard", "show", "00OFk00000A0001MAB" },
      { "dashboard", "show" },
      { "dashboard", "list", SALES },
      { "dashboard", "open", SALES },
      { "dashboard", "show", SALES, "--filter", "Region" },
      { "dashboard", "show", SALES, "--filter", "Region=EMEA", "--filter", "Region=APAC" },
      { "dashboard", "show", SALES, "--sort", "AMOUNT" },
      { "dashboard", "show", SALES, "--wait" },
      { "dashboard", "list", "--component", "x" },
      { "dashboard", "refresh", SALES, "--component", "x" },
      { "dashboard", "show", SALES, "--running-user", "00OFk00000A0001MAB" },
    }
    for _, args in ipairs(cases) do
      local code, _, err = sfr(args)
      assert.equal(2, code, table.concat(args, " ") .. ": " .. err)
    end
    assert.equal(0, org:stats().requests)
  end)
end)
