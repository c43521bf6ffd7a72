-- cli_xlsx_spec: the command line's workbooks, with the real bin/sfreports (a child
-- process) against the fake org: `run --format xlsx` (the native writer, with --all),
-- `export` (Salesforce's formatted file), -o FILE replaced only when complete, -o - onto
-- a pipe and never onto a terminal, Ctrl-C during an export leaving no file.
local fakeorg = require "fakeorg"
local reader = require "xlsx_reader"

local R = fakeorg.reports
local read_file = fakeorg.read_file

local cli_run = require "cli_run"

local org, TMP
local runner = cli_run.new()

local function sfr(args) return runner:run(args) end
local function leftovers() return runner:leftovers() end

describe("sfreports command: xlsx", function()
  setup(function()
    org = fakeorg.start()
    TMP = runner:use_org(org, "clixlsx")
  end)

  teardown(function()
    if org then org:stop() end
  end)

  before_each(function() org:reset() end)

  it("run --format xlsx writes the report's rows into a workbook; --all writes every row", function()
    local path = TMP .. "/summary.xlsx"
    local res = sfr({ "run", R.summary_3.id, "--format", "xlsx", "-o", path })
    assert.are.equal(0, res.code, res.err)
    assert.are.equal("", res.out)
    local sheet = reader.open(path):sheet("Report")
    assert.are.equal(1501, sheet.last_row)
    assert.are.equal("Type", sheet.rows[1][1].value)
    local all = TMP .. "/all.xlsx"
    res = sfr({ "run", R.tabular_5k.id, "--all", "--format", "xlsx", "--raw", "--columns", "OPPORTUNITY_ID,AMOUNT",
      "-o", all })
    assert.are.equal(0, res.code, res.err)
    sheet = reader.open(all):sheet(1)
    assert.are.equal(5001, sheet.last_row)
    local seen = {}
    for r = 2, 5001 do seen[sheet.rows[r][1].value] = true end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.are.equal(5000, n) -- every row once
    assert.are.same({}, leftovers())
  end)

  it("warns (status 3) for a truncated report, and keeps -o FILE when a page fails", function()
    local path = TMP .. "/cut.xlsx"
    local res = sfr({ "run", R.tabular_5k.id, "--format", "xlsx", "-o", path })
    assert.are.equal(3, res.code, res.err)
    assert.truthy(res.err:find("truncated", 1, true))
    assert.are.equal(2001, reader.open(path):sheet(1).last_row)
    local f = assert(io.open(path, "wb"))
    f:write("keep me")
    f:close()
    org:control("fault", { kind = "server_error", count = 50, path = "A0003MAB%?includeDetails", after = 2 })
    res = sfr({ "run", R.tabular_5k.id, "--all", "--format", "xlsx", "-o", path })
    assert.are.equal(1, res.code)
    assert.truthy(res.err:find("no workbook was written", 1, true), res.err)
    assert.are.equal("keep me", read_file(path))
    assert.are.same({}, leftovers())
  end)

  it("writes a workbook to standard output only with -o -, and never to a terminal", function()
    local res = sfr({ "run", R.tabular_small.id, "--format", "xlsx" })
    assert.are.equal(2, res.code)
    assert.truthy(res.err:find("give -o FILE (or -o - to write it to a pipe)", 1, true), res.err)
    assert.are.equal(0, org:stats().requests)
    res = sfr({ "run", R.tabular_small.id, "--format", "xlsx", "-o", "-" })
    assert.are.equal(0, res.code, res.err)
    local path = TMP .. "/piped.xlsx"
    local f = assert(io.open(path, "wb"))
    f:write(res.out)
    f:close()
    assert.are.equal(41, reader.open(path):sheet(1).last_row)
    -- a terminal (cli.main told so, as the terminal check would find)
    local cli = require "sfreports.cli"
    local out, err = {}, {}
    local function into(list)
      return { write = function(_, ...)
        for _, s in ipairs({ ... }) do list[#list + 1] = s end
        return true
      end }
    end
    local streams = { stdout = into(out), stderr = into(err), stdout_tty = true }
    local code = cli.main({ "export", R.tabular_small.id, "-o", "-" },
      { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token }, streams)
    assert.are.equal(2, code)
    assert.truthy(table.concat(err):find("refusing to write an .xlsx workbook to a terminal", 1, true))
    assert.are.same({}, out)
    res = sfr({ "describe", R.tabular_small.id, "--format", "xlsx", "-o", path })
    assert.are.equal(2, res.code)
    res = sfr({ "export", R.tabular_small.id, "--format", "csv", "-o", path })
    assert.are.equal(2, res.code)
  end)

  it("export writes Salesforce's file to -o FILE or onto a pipe, with its file name in a note", function()
    local path = TMP .. "/sf.xlsx"
    local res = sfr({ "export", R.tabular_small.id, "--filter", "AMOUNT > 100000", "-o", path })
    assert.are.equal(0, res.code, res.err)
    assert.truthy(res.err:find("(Small Tabular Pipeline.xlsx)", 1, true), res.err)
    assert.is_true((reader.test(path)))
    local piped = sfr({ "export", R.tabular_small.id, "--filter", "AMOUNT > 100000", "-o", "-", "-q" })
    assert.are.equal(0, piped.code, piped.err)
    assert.are.equal(read_file(path), piped.out)
    res = sfr({ "export", "00OFk00000Z0001MAB", "-o", TMP .. "/missing.xlsx" })
    assert.are.equal(1, res.code)
    assert.truthy(res.err:find("NOT_FOUND", 1, true))
    assert.is_nil(io.open(TMP .. "/missing.xlsx", "rb"))
    assert.are.same({}, leftovers())
  end)

  it("leaves no file when an export is interrupted (Ctrl-C)", function()
    org:control("fault", { kind = "stall", bytes = 200000, seconds = 3 })
    local path = TMP .. "/stopped.xlsx"
    local base = runner:spawn({ "export", R.tabular_small.id, "-o", path })
    -- once part of the file is in its temporary file, interrupt
    local pid
    for _ = 1, 400 do
      pid = pid or tonumber((read_file(base .. ".pid") or ""):match("%d+"))
      local tmp = leftovers()[1]
      if pid and tmp and (#(read_file(TMP .. "/" .. tmp) or "") > 0) then break end
      os.execute("sleep 0.025")
    end
    assert.is_true(#leftovers() == 1, "a temporary file while the export runs")
    os.execute("kill -INT " .. pid)
    for _ = 1, 400 do
      if read_file(base .. ".rc") then break end
      os.execute("sleep 0.025")
    end
    local res = runner:result(base)
    assert.are.equal(130, res.code, res.err)
    assert.is_nil(io.open(path, "rb"))
    assert.are.same({}, leftovers())
  end)
end)
