-- cli_spec: runs the real executable bin/sfreports (as a child process, under the
-- interpreter running this spec) against the fake org, and checks its standard output,
-- standard error and exit status for every command, format, option and exit status.
-- The library's own writers produce the expected bytes, so the CLI is held to them.
local fakeorg = require "fakeorg"
local cjson = require "cjson"
local cli_run = require "cli_run"

local ROOT, BIN, LUA = cli_run.ROOT, cli_run.BIN, cli_run.LUA
local LUA_VERSION = rawget(_G, "jit") and "5.1" or _VERSION:match("(%d+%.%d+)")
local q = fakeorg.shell_quote
local R = fakeorg.reports

local read_file = fakeorg.read_file

local write_file = cli_run.write_file

local function lines_of(s)
  local out = {}
  for line in s:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

local org, TMP

local runner = cli_run.new()

-- Runs bin/sfreports with args. o: env (table; default the org's URL and token), stdin
-- (string), cwd, bin (another launcher path), direct (exec the file itself: its shebang).
-- Returns { out =, err =, code = }.
local function sfr(args, o) return runner:run(args, o) end

-- the command's own usage, or the general one (issue 23)
local USAGE_LINE = "usage: sfreports "

local function assert_usage(res, pattern)
  assert.are.equal(2, res.code)
  assert.are.equal("", res.out)
  assert.truthy(res.err:find(USAGE_LINE, 1, true), "no usage line in: " .. res.err)
  if pattern then assert.truthy(res.err:find(pattern, 1, true), "expected '" .. pattern .. "' in: " .. res.err) end
end

local function assert_ok(res)
  assert.are.equal(0, res.code, "stderr: " .. res.err)
end

-- The library's own output for a report (what the CLI must print byte for byte).
local sfreports, writers
local function library_output(id, fmt, wopts, ropts)
  local client = assert(sfreports.new { instance_url = org.url, access_token = org.token })
  local report = assert(client:run_sync(id, ropts))
  local chunks = {}
  assert(writers.write(fmt, report, function(c) chunks[#chunks + 1] = c; return true end, wopts))
  client:close()
  return table.concat(chunks), report
end

local function jsonl_rows(s)
  local rows = {}
  for _, line in ipairs(lines_of(s)) do rows[#rows + 1] = cjson.decode(line) end
  return rows
end

-- Terminal cells of a UTF-8 string: CJK ideographs take two, other code points one.
local function cells(s)
  local w = 0
  for ch in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
    local b1 = ch:byte(1)
    if b1 == 0xE4 or b1 == 0xE5 or b1 == 0xE6 or b1 == 0xE7 or b1 == 0xE8 or b1 == 0xE9 then
      w = w + 2
    else
      w = w + 1
    end
  end
  return w
end

describe("sfreports command", function()
  setup(function()
    sfreports = require "sfreports"
    writers = require "sfreports.writers"
    org = fakeorg.start()
    TMP = runner:use_org(org, "cli")
  end)

  teardown(function()
    if org then org:stop() end
  end)

  describe("help, version and usage errors", function()
    it("runs through its own shebang and prints the overview with --help", function()
      local res = sfr({ "--help" }, { direct = true })
      assert_ok(res)
      assert.truthy(res.out:find("usage: sfreports COMMAND", 1, true))
      for _, c in ipairs({ "run REPORT_ID", "describe REPORT_ID", "instances REPORT_ID",
        "fetch REPORT_ID INSTANCE_ID", "delete REPORT_ID INSTANCE_ID", "list", "query METADATA.json", "types" }) do
        assert.truthy(res.out:find(c, 1, true), c)
      end
      assert.are.equal("", res.err)
    end)

    it("prints the library version with --version", function()
      local res = sfr({ "--version" })
      assert_ok(res)
      assert.are.equal("sfreports " .. sfreports.VERSION, res.out:match("^(sfreports %S+) %("))
    end)

    it("gives every command's help with examples, by `help COMMAND` and by COMMAND --help", function()
      for _, c in ipairs({ "run", "describe", "instances", "fetch", "delete", "list", "query", "types" }) do
        local res = sfr({ "help", c })
        assert_ok(res)
        assert.truthy(res.out:find("usage: sfreports " .. c, 1, true), c)
        assert.truthy(res.out:find("Example", 1, true), c)
        local res2 = sfr({ c, "--help" })
        assert_ok(res2)
        assert.are.equal(res.out, res2.out)
      end
      local run = sfr({ "help", "run" }).out
      for _, opt in ipairs({ "--filter", "--logic", "--replace-filters", "--date", "--from", "--to", "--sort",
        "--top", "--columns", "-o", "--timeout", "--format", "--raw", "--async", "--no-wait", "--all" }) do
        assert.truthy(run:find(opt, 1, true), opt)
      end
      assert.truthy(run:find("reads all rows", 1, true)) -- table buffers, and says so
    end)

    it("exits 2 with the usage line for a missing or unknown command and for `help nothing`", function()
      assert_usage(sfr({}), "a command is needed")
      assert_usage(sfr({ "frobnicate" }), 'unknown command "frobnicate"')
      assert_usage(sfr({ "help", "nothing" }), "nothing")
    end)

    it("exits 2 for an unknown option, a missing value, a flag with a value and a repeated option", function()
      assert_usage(sfr({ "run", R.tabular_small.id, "--colour" }), "unknown option --colour")
      assert_usage(sfr({ "run", R.tabular_small.id, "--format" }), "--format needs a value")
      assert_usage(sfr({ "run", R.tabular_small.id, "--raw=yes" }), "--raw takes no value")
      assert_usage(sfr({ "run", R.tabular_small.id, "--top", "1", "--top", "2" }), "--top is given twice")
    end)

    it("exits 2 for wrong arguments, a malformed id, a bad format or timeout, and options of other commands", function()
      assert_usage(sfr({ "run" }), "takes REPORT_ID")
      assert_usage(sfr({ "fetch", R.tabular_small.id }), "takes REPORT_ID INSTANCE_ID")
      assert_usage(sfr({ "list", "extra" }), "takes no arguments")
      assert_usage(sfr({ "run", "00OFk00000A0001XYZ" }), "report id")
      assert_usage(sfr({ "run", R.tabular_small.id, "--format", "xml" }), '--format "xml"')
      assert_usage(sfr({ "run", R.tabular_small.id, "--timeout", "soon" }), '--timeout "soon"')
      assert_usage(sfr({ "list", "--raw" }), "option --raw does not apply to `sfreports list`")
      assert_usage(sfr({ "describe", R.tabular_small.id, "--filter", "AMOUNT > 1" }), "--filter does not apply")
      assert_usage(sfr({ "query", "md.json", "--async" }), "--async does not apply")
    end)

    it("refuses a token on the command line without echoing it", function()
      for _, args in ipairs({ { "--token=s3cr3t-value" }, { "--access-token", "s3cr3t-value" },
        { "--token", "s3cr3t-value" } }) do
        table.insert(args, 1, "list")
        local res = sfr(args)
        assert_usage(res, "is not accepted")
        assert.truthy(res.err:find("SF_ACCESS_TOKEN", 1, true))
        assert.falsy(res.err:find("s3cr3t", 1, true))
      end
    end)
  end)

  describe("credentials and failures (exit 1)", function()
    it("names the missing variables", function()
      local res = sfr({ "list" }, { env = {} })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("SF_INSTANCE_URL is not set", 1, true))
      res = sfr({ "list" }, { env = { SF_INSTANCE_URL = org.url } })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("SF_ACCESS_TOKEN is not set", 1, true))
    end)

    it("reports a rejected token without printing it", function()
      local secret = "00DFAKE!wrong-secret-token-123"
      local res = sfr({ "run", R.tabular_small.id }, { env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = secret } })
      assert.are.equal(1, res.code)
      assert.are.equal("", res.out)
      assert.truthy(res.err:find("Session expired or invalid", 1, true), res.err)
      assert.falsy(res.err:find("wrong-secret", 1, true))
    end)

    it("uses SF_API_VERSION and --api-version", function()
      local env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token, SF_API_VERSION = "29.0" }
      local res = sfr({ "list" }, { env = env })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("API_VERSION_RETIRED", 1, true), res.err)
      assert_ok(sfr({ "list", "--api-version", "58.0" }, { env = env }))
      res = sfr({ "list", "--api-version", "twelve" })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("twelve", 1, true))
    end)

    it("reports a network failure, an API error and an unknown report", function()
      local res = sfr({ "list" }, { env = { SF_INSTANCE_URL = "http://127.0.0.1:1", SF_ACCESS_TOKEN = org.token } })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:match("^sfreports: .+"))
      org:control("fault", { kind = "limit", count = 10, path = "/analytics/reports$" })
      res = sfr({ "list" })
      org:reset()
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("Limit exceeded", 1, true), res.err)
      res = sfr({ "run", "00OFk00000Z0009MAB" })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("does not exist", 1, true), res.err)
    end)

    it("reports a Salesforce CLI login that cannot be used (--org)", function()
      local res = sfr({ "list", "--org", "no-such-alias-xyz" }, { env = { PATH = TMP .. ":/usr/bin:/bin" } })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find('cannot use the Salesforce CLI login "no-such-alias-xyz"', 1, true), res.err)
    end)

    it("runs with a Salesforce CLI login (--org), no token in the environment or output", function()
      -- the stand-in `sf` (spec/support/bin/sf) answers for alias "dev" with the fake org
      local sfdir = TMP .. "/sf-state"
      os.execute("mkdir -p " .. q(sfdir))
      write_file(sfdir .. "/dev.url", org.url)
      local bin = ROOT .. "/spec/support/bin"
      local res = sfr({ "run", R.tabular_small.id, "--org", "dev", "--format", "jsonl" },
        { env = { PATH = bin .. ":/usr/bin:/bin", FAKE_SF_DIR = sfdir } })
      assert_ok(res)
      assert.are.equal(40, #lines_of(res.out))
      local calls = read_file(sfdir .. "/calls") or ""
      assert.truthy(calls:find("org display --target-org dev --json", 1, true), calls)
      assert.truthy(calls:find("org auth show-access-token --target-org dev --json", 1, true), calls)
      assert.is_nil(res.err:find("00D", 1, true))
    end)
  end)

  describe("run", function()
    it("writes CSV by default, byte for byte what the library's CSV writer gives", function()
      local want = library_output(R.tabular_small.id, "csv")
      local res = sfr({ "run", R.tabular_small.id })
      assert_ok(res)
      assert.are.equal("", res.err)
      assert.are.equal(want, res.out)
      assert.truthy(res.out:find("^Opportunity Name,Account Name,"))
    end)

    it("writes tsv, json, jsonl, labels or raw values, as the library does", function()
      for _, fmt in ipairs({ "tsv", "json", "jsonl" }) do
        for _, raw in ipairs({ false, true }) do
          local args = { "run", R.summary_1.id, "--format", fmt }
          if raw then args[#args + 1] = "--raw" end
          local res = sfr(args)
          assert_ok(res)
          assert.are.equal(library_output(R.summary_1.id, fmt, { raw = raw }), res.out, fmt)
        end
      end
      local rows = cjson.decode(sfr({ "run", R.summary_1.id, "--format", "json", "--raw" }).out)
      assert.are.equal(R.summary_1.rows, #rows)
      assert.are.equal("number", type(rows[1].AMOUNT))
      assert.are.equal("string", type(cjson.decode(sfr({ "run", R.summary_1.id, "--format", "json" }).out)[1].AMOUNT))
    end)

    it("guards formulas with --formula-guard", function()
      local want = library_output(R.tabular_small.id, "csv", { formula_guard = true })
      local res = sfr({ "run", R.tabular_small.id, "--formula-guard" })
      assert_ok(res)
      assert.are.equal(want, res.out)
    end)

    it("writes every report format (summary, matrix, joined)", function()
      for _, key in ipairs({ "summary_3", "matrix", "joined" }) do
        local res = sfr({ "run", R[key].id })
        assert_ok(res)
        assert.are.equal(library_output(R[key].id, "csv"), res.out, key)
      end
    end)

    it("aligns columns with --format table, numbers to the right, wide characters counted twice", function()
      local res = sfr({ "run", R.tabular_small.id, "--format", "table", "--columns", "ACCOUNT_NAME,AMOUNT" })
      assert_ok(res)
      local lines = lines_of(res.out)
      assert.are.equal(R.tabular_small.rows + 2, #lines)
      assert.truthy(lines[1]:match("^Account Name +Amount$"))
      assert.truthy(lines[2]:match("^%-+  %-+$"))
      local width = cells(lines[2])
      local saw_cjk = false
      for i = 3, #lines do
        assert.are.equal(width, cells(lines[i]), lines[i])
        if lines[i]:find("\228", 1, true) then saw_cjk = true end
        assert.truthy(lines[i]:match("%$[%d,]+%.%d%d$") or lines[i]:match("  +$"), lines[i])
      end
      assert.is_true(saw_cjk)
      -- same rows as the CSV
      local csv = lines_of(library_output(R.tabular_small.id, "tsv", nil, { columns = { "ACCOUNT_NAME", "AMOUNT" } }))
      for i = 2, #csv do
        local account = csv[i]:match("^([^\t]*)")
        assert.are.equal(1, lines[i + 1]:find(account, 1, true), account)
      end
    end)

    it("writes to a file with -o, and leaves an existing file alone when the run fails", function()
      local path = TMP .. "/out.csv"
      local res = sfr({ "run", R.tabular_small.id, "-o", path })
      assert_ok(res)
      assert.are.equal("", res.out)
      assert.are.equal(library_output(R.tabular_small.id, "csv"), read_file(path))
      write_file(path, "keep me\n")
      res = sfr({ "run", "00OFk00000Z0009MAB", "--output", path })
      assert.are.equal(1, res.code)
      assert.are.equal("keep me\n", read_file(path))
      res = sfr({ "run", R.tabular_small.id, "-o", TMP .. "/no/such/dir/x.csv" })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("cannot write", 1, true))
    end)

    it("exits 3 with a warning naming --all when the report is truncated (even with --quiet)", function()
      for _, quiet in ipairs({ false, true }) do
        local args = { "run", R.tabular_5k.id, "--format", "jsonl" }
        if quiet then args[#args + 1] = "--quiet" end
        local res = sfr(args)
        assert.are.equal(3, res.code)
        assert.are.equal(2000, #lines_of(res.out))
        assert.truthy(res.err:find("truncated", 1, true))
        assert.truthy(res.err:find("--all", 1, true))
      end
      assert_ok(sfr({ "run", R.tabular_wide.id })) -- exactly 2,000 rows is not truncated
    end)

    it("pages with --all through client:run_all, or says that the library cannot", function()
      local res = sfr({ "run", R.tabular_5k.id, "--all", "--format", "jsonl" })
      if require("sfreports.client").Client.run_all then
        assert_ok(res)
        assert.are.equal(5000, #lines_of(res.out))
      else
        assert_usage(res, "client:run_all")
      end
      assert_usage(sfr({ "run", R.tabular_5k.id, "--all", "--no-wait" }), "--no-wait cannot be combined with --all")
      assert_usage(sfr({ "run", R.tabular_5k.id, "--all", "--async" }), "drop --async")
    end)

    it("fails with exit 1 when a later page fails after rows were written", function()
      -- the first run, the planning run and the first slices go through; every run past a
      -- lower key bound (the later slices or keyset pages) gets a 500
      org:control("fault", { kind = "server_error", count = 50, path = "A0003MAB%?includeDetails",
        match = "greaterOrEqual" })
      local res = sfr({ "run", R.tabular_5k.id, "--all", "--format", "jsonl" })
      org:reset()
      assert.are.equal(1, res.code)
      assert.is_true(#lines_of(res.out) >= 1)
      assert.is_true(#lines_of(res.out) < 5000)
      assert.truthy(res.err:find("500", 1, true))
      assert.truthy(res.err:find("output is incomplete", 1, true))
    end)
  end)

  describe("run: filters and other changes", function()
    local all
    setup(function()
      all = jsonl_rows(library_output(R.tabular_small.id, "jsonl", { raw = true }))
    end)

    local function run_jsonl(args)
      local full = { "run", R.tabular_small.id, "--format", "jsonl", "--raw" }
      for _, a in ipairs(args) do full[#full + 1] = a end
      local res = sfr(full)
      assert_ok(res)
      return jsonl_rows(res.out)
    end

    local function count(pred)
      local n = 0
      for _, r in ipairs(all) do if pred(r) then n = n + 1 end end
      return n
    end

    it("applies --filter with symbolic operators", function()
      local rows = run_jsonl({ "--filter", "AMOUNT >= 150000" })
      local want = count(function(r) return type(r.AMOUNT) == "number" and r.AMOUNT >= 150000 end)
      assert.is_true(want > 0 and want < #all)
      assert.are.equal(want, #rows)
      for _, r in ipairs(rows) do assert.is_true(r.AMOUNT >= 150000) end
      rows = run_jsonl({ "--filter", "STAGE_NAME!=Prospecting" })
      assert.are.equal(count(function(r) return r.STAGE_NAME ~= "Prospecting" end), #rows)
    end)

    it("applies word operators, quoted values and comma lists", function()
      local rows = run_jsonl({ "--filter", "STAGE_NAME = 'Closed Won',Prospecting" })
      local want = count(function(r) return r.STAGE_NAME == "Closed Won" or r.STAGE_NAME == "Prospecting" end)
      assert.is_true(want > 0)
      assert.are.equal(want, #rows)
      rows = run_jsonl({ "--filter", 'STAGE_NAME starts_with "Clo"' })
      assert.are.equal(count(function(r) return r.STAGE_NAME:sub(1, 3) == "Clo" end), #rows)
      rows = run_jsonl({ "--filter", "Stage contains neg" }) -- a label, case-insensitive text
      assert.are.equal(count(function(r) return r.STAGE_NAME:lower():find("neg", 1, true) ~= nil end), #rows)
      assert.is_true(#rows > 0)
    end)

    it("combines filters with --logic", function()
      local rows = run_jsonl({ "--filter", "AMOUNT >= 200000", "--filter", "STAGE_NAME = Prospecting",
        "--logic", "1 OR 2" })
      local want = count(function(r)
        return (type(r.AMOUNT) == "number" and r.AMOUNT >= 200000) or r.STAGE_NAME == "Prospecting"
      end)
      assert.are.equal(want, #rows)
      local both = run_jsonl({ "--filter", "AMOUNT >= 200000", "--filter", "STAGE_NAME = Prospecting" })
      assert.is_true(#both < #rows)
    end)

    it("exits 2 for bad filter syntax and bad logic", function()
      assert_usage(sfr({ "run", R.tabular_small.id, "--filter", "AMOUNT ~ 5" }), "unknown operator")
      assert_usage(sfr({ "run", R.tabular_small.id, "--filter", "AMOUNT" }), "COLUMN OPERATOR VALUE")
      assert_usage(sfr({ "run", R.tabular_small.id, "--filter", "TYPE = 'open" }), "not closed")
      assert_usage(sfr({ "run", R.tabular_small.id, "--filter", "AMOUNT < 1,2" }), "not a comma list")
      assert_usage(sfr({ "run", R.tabular_small.id, "--filter", "AMOUNT > 1", "--logic", "1 OR 3" }), "--logic")
      assert_usage(sfr({ "run", R.tabular_small.id, "--logic", "1" }), "--logic needs --filter")
    end)

    it("exits 1 when the report rejects a filter (unknown column)", function()
      local res = sfr({ "run", R.tabular_small.id, "--filter", "AMOUNTT > 5" })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("AMOUNTT", 1, true))
    end)

    it("accepts --replace-filters with and without columns", function()
      assert.are.equal(#all, #run_jsonl({ "--replace-filters" }))
      local res = sfr({ "run", R.tabular_small.id, "--replace-filters=STAGE_NAME" })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("no saved filter", 1, true), res.err)
    end)

    it("sets the date filter with --date COLUMN:LITERAL and --from/--to", function()
      local year = os.date("!%Y")
      local rows = run_jsonl({ "--date", "CLOSE_DATE:THIS_YEAR" })
      assert.are.equal(count(function(r) return r.CLOSE_DATE:sub(1, 4) == year end), #rows)
      assert.is_true(#rows > 0)
      rows = run_jsonl({ "--from", "2026-01-01", "--to", "2026-06-30", "--date-column", "CLOSE_DATE" })
      local want = count(function(r) return r.CLOSE_DATE >= "2026-01-01" and r.CLOSE_DATE <= "2026-06-30" end)
      assert.is_true(want > 0)
      assert.are.equal(want, #rows)
      assert_usage(sfr({ "run", R.tabular_small.id, "--date", "CLOSE_DATE:" }), "--date")
      assert_usage(sfr({ "run", R.tabular_small.id, "--date", "THIS_YEAR", "--from", "2026-01-01" }),
        "cannot be combined")
      assert_usage(sfr({ "run", R.tabular_small.id, "--from", "2026-02-30" }), "--from")
      assert_usage(sfr({ "run", R.tabular_small.id, "--from", "2026-05-01", "--to", "2026-04-01" }), "after")
    end)

    it("sorts, limits and picks columns", function()
      local rows = run_jsonl({ "--sort", "AMOUNT:desc", "--columns", "OPPORTUNITY_NAME,AMOUNT" })
      assert.are.equal(#all, #rows)
      local prev = math.huge
      for _, r in ipairs(rows) do
        if r.AMOUNT ~= cjson.null then
          assert.is_true(r.AMOUNT <= prev)
          prev = r.AMOUNT
        end
        assert.is_nil(r.STAGE_NAME)
      end
      local top = run_jsonl({ "--sort", "AMOUNT:desc", "--top", "5", "--columns", "OPPORTUNITY_NAME,AMOUNT" })
      assert.are.equal(5, #top)
      for i = 1, 5 do assert.are.same(rows[i], top[i]) end
      local res = sfr({ "run", R.tabular_small.id, "--columns", "AMOUNT, STAGE_NAME" })
      assert_ok(res)
      assert.are.equal("Amount,Stage", lines_of(res.out)[1])
      assert_usage(sfr({ "run", R.tabular_small.id, "--top", "0" }), "--top")
      assert_usage(sfr({ "run", R.tabular_small.id, "--columns", "AMOUNT,,TYPE" }), "empty name")
    end)
  end)

  describe("asynchronous runs", function()
    it("--async waits and writes the same rows; progress only when asked, never with --quiet", function()
      local want = library_output(R.tabular_small.id, "csv")
      local res = sfr({ "run", R.tabular_small.id, "--async" })
      assert_ok(res)
      assert.are.equal(want, res.out)
      assert.are.equal("", res.err) -- standard error is a file, not a terminal
      org:control("config", { async_delay = 0.8 })
      res = sfr({ "run", R.tabular_small.id, "--async", "--progress" })
      assert_ok(res)
      assert.are.equal(want, res.out)
      local lines = lines_of(res.err)
      assert.is_true(#lines >= 2, res.err)
      assert.truthy(lines[1]:match("^sfreports: instance 0LG%w+ %a+, %d+%.%ds, %d+ polls?$"), lines[1])
      assert.truthy(res.err:find("Running", 1, true), res.err)
      assert.truthy(lines[#lines]:match(" Success, %d+%.%ds, %d+ polls?$"), lines[#lines])
      res = sfr({ "run", R.tabular_small.id, "--async", "--progress", "--quiet" })
      org:reset()
      assert_ok(res)
      assert.are.equal("", res.err)
    end)

    it("fails with the instance status Error, and on --timeout with the fetch command to use", function()
      local res = sfr({ "run", R.async_error.id, "--async" })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("Error", 1, true))
      -- (2 s: enough for the start request on a busy machine; the run itself never ends)
      res = sfr({ "run", R.never_done.id, "--async", "--timeout", "2" })
      assert.are.equal(1, res.code)
      assert.are.equal("", res.out)
      assert.truthy(res.err:find("still Running", 1, true), res.err)
      assert.truthy(res.err:find("sfreports fetch " .. R.never_done.id .. " 0LG", 1, true), res.err)
    end)

    it("--no-wait prints the instance id; instances, fetch and delete work with it", function()
      local res = sfr({ "run", R.tabular_small.id, "--no-wait" })
      assert_ok(res)
      local iid = res.out:match("^(0LG%w+)\n$")
      assert.truthy(iid, res.out)
      assert.truthy(res.err:find("sfreports fetch", 1, true))
      assert.are.equal("", sfr({ "run", R.tabular_small.id, "--no-wait", "-q" }).err)
      assert_usage(sfr({ "run", R.tabular_small.id, "--no-wait", "--format", "json" }), "--no-wait")

      res = sfr({ "instances", R.tabular_small.id })
      assert_ok(res)
      local lines = lines_of(res.out)
      assert.truthy(lines[1]:match("^id +status +requestDate +completionDate +ownerId$"), lines[1])
      assert.truthy(res.out:find(iid, 1, true))
      local list = cjson.decode(sfr({ "instances", R.tabular_small.id, "--format", "json" }).out)
      local found
      for _, i in ipairs(list) do if i.id == iid then found = i end end
      assert.truthy(found)
      assert.truthy(found.status == "New" or found.status == "Running" or found.status == "Success")

      res = sfr({ "fetch", R.tabular_small.id, iid, "--wait" })
      assert_ok(res)
      assert.are.equal(library_output(R.tabular_small.id, "csv"), res.out)
      res = sfr({ "fetch", R.tabular_small.id, iid, "--format", "jsonl", "--raw" })
      assert_ok(res)
      assert.are.equal(library_output(R.tabular_small.id, "jsonl", { raw = true }), res.out)

      res = sfr({ "delete", R.tabular_small.id, iid })
      assert_ok(res)
      assert.are.equal("", res.out)
      assert.truthy(res.err:find("deleted instance " .. iid, 1, true))
      assert.falsy(sfr({ "instances", R.tabular_small.id, "--format", "csv" }).out:find(iid, 1, true))
      res = sfr({ "delete", R.tabular_small.id, iid })
      assert.are.equal(1, res.code)
      res = sfr({ "fetch", R.tabular_small.id, iid })
      assert.are.equal(1, res.code)
    end)

    it("fetch of an unfinished run fails and suggests --wait", function()
      local iid = sfr({ "run", R.never_done.id, "--no-wait" }).out:match("(0LG%w+)")
      assert.truthy(iid)
      local res = sfr({ "fetch", R.never_done.id, iid })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("--wait", 1, true), res.err)
      assert_ok(sfr({ "delete", R.never_done.id, iid, "--quiet" }))
    end)
  end)

  describe("describe, list, types, query", function()
    it("describe prints the describe as JSON, or the columns as a table or CSV", function()
      local res = sfr({ "describe", R.tabular_small.id })
      assert_ok(res)
      local d = cjson.decode(res.out)
      assert.are.equal(R.tabular_small.id, d.reportMetadata.id)
      assert.truthy(res.out:find('"reportFilters": []', 1, true)) -- empty arrays stay arrays
      res = sfr({ "describe", R.tabular_small.id, "--format", "csv" })
      assert_ok(res)
      local lines = lines_of(res.out)
      assert.are.equal("name,label,type,role", lines[1])
      assert.truthy(res.out:find("\nAMOUNT,Amount,currency,detail\n", 1, true))
      assert.truthy(res.out:find("\nAGE,Age,int,\n", 1, true))
      res = sfr({ "describe", R.summary_1.id, "--format", "table" })
      assert_ok(res)
      assert.truthy(res.out:find("\nSTAGE_NAME +Stage +picklist +grouping\n"), res.out)
    end)

    it("list prints the recently viewed reports in each format", function()
      local res = sfr({ "list" })
      assert_ok(res)
      local n = 0
      for _ in pairs(R) do n = n + 1 end
      assert.are.equal(n + 2, #lines_of(res.out))
      assert.truthy(res.out:find(R.tabular_small.id .. "  Small Tabular Pipeline", 1, true))
      local csv = sfr({ "list", "--format", "csv" }).out
      assert.are.equal("id,name,url", lines_of(csv)[1])
      assert.truthy(csv:find('\n00OFk00000B0002MAB,"Pipeline by Type, Stage and Lead Source",', 1, true))
      local json = cjson.decode(sfr({ "list", "--format", "json" }).out)
      assert.are.equal(n, #json)
      assert.are.equal(n, #lines_of(sfr({ "list", "--format", "jsonl" }).out))
      assert.are.equal(n + 1, #lines_of(sfr({ "list", "--format", "tsv" }).out))
    end)

    it("types lists the report types by category", function()
      local res = sfr({ "types", "--format", "csv" })
      assert_ok(res)
      assert.are.equal("category,type,label\nOpportunities,Opportunity,Opportunities\n", res.out)
    end)

    it("query runs a metadata file or standard input, with run options", function()
      local md = sfr({ "describe", R.tabular_small.id }).out
      local path = TMP .. "/md.json"
      write_file(path, md)
      local res = sfr({ "query", path, "--sort", "AMOUNT:desc", "--top", "3", "--format", "jsonl", "--raw" })
      assert_ok(res)
      local rows = jsonl_rows(res.out)
      assert.are.equal(3, #rows)
      assert.is_true(rows[1].AMOUNT >= rows[2].AMOUNT and rows[2].AMOUNT >= rows[3].AMOUNT)
      assert.is_not_nil(rows[1].OPPORTUNITY_NAME)
      res = sfr({ "query", "-", "--filter", "AMOUNT > 240000", "--format", "csv" }, { stdin = md })
      assert_ok(res)
      assert.truthy(#lines_of(res.out) >= 2)
      res = sfr({ "query", path }) -- the query data set has 5,000 rows: truncated
      assert.are.equal(3, res.code)
      write_file(path, "{not json")
      res = sfr({ "query", path })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("is not JSON", 1, true))
      write_file(path, '{"hello": 1}')
      res = sfr({ "query", path })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("no report metadata", 1, true))
      assert_usage(sfr({ "query", TMP .. "/missing.json" }), "cannot read")
    end)
  end)

  describe("installation", function()
    it("runs through a symlink to the checkout, from any directory", function()
      local link = TMP .. "/bin-link"
      os.execute("ln -sf " .. q(BIN) .. " " .. q(link))
      local res = sfr({ "run", R.tabular_small.id }, { bin = link, cwd = "/" })
      assert_ok(res)
      assert.are.equal(library_output(R.tabular_small.id, "csv"), res.out)
    end)

    it("is installed by make install and runs from the installed modules", function()
      local dest = TMP .. "/dest"
      local ok = os.execute("cd " .. q(ROOT) .. " && make -s install LUA=" .. LUA .. " DESTDIR=" .. q(dest)
        .. " PREFIX=/opt/sfr >" .. q(TMP .. "/install.log") .. " 2>&1")
      assert.truthy(ok == true or ok == 0, read_file(TMP .. "/install.log"))
      local bin = dest .. "/opt/sfr/bin/sfreports"
      local first = io.open(bin):read("*l")
      assert.are.equal("#!/usr/bin/env " .. LUA, first)
      local env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token,
        LUA_PATH = dest .. "/opt/sfr/share/lua/" .. LUA_VERSION .. "/?.lua;"
          .. dest .. "/opt/sfr/share/lua/" .. LUA_VERSION .. "/?/init.lua;;",
        LUA_CPATH = dest .. "/opt/sfr/lib/lua/" .. LUA_VERSION .. "/?.so;;" }
      local res = sfr({ "run", R.tabular_small.id }, { bin = bin, cwd = "/", env = env, direct = true })
      assert_ok(res)
      assert.are.equal(library_output(R.tabular_small.id, "csv"), res.out)
      -- and not from the checkout: without the installed paths it cannot load
      env.LUA_PATH, env.LUA_CPATH = nil, nil
      res = sfr({ "run", R.tabular_small.id }, { bin = bin, cwd = "/", env = env, direct = true })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("cannot load", 1, true), res.err)
    end)
  end)
end)

describe("sfreports.cli.main in process", function()
  local cli = require "sfreports.cli"
  local org2

  setup(function() org2 = fakeorg.start() end)
  teardown(function() if org2 then org2:stop() end end)

  local buffer = cli_run.buffer

  it("rewrites one progress line on a terminal (carriage return, erase to end of line)", function()
    org2:control("config", { async_delay = 0.6 })
    local out, err = buffer(), buffer()
    local env = { SF_INSTANCE_URL = org2.url, SF_ACCESS_TOKEN = org2.token }
    local code = cli.main({ "run", R.tabular_small.id, "--async", "--format", "jsonl" }, env,
      { stdout = out, stderr = err, stderr_tty = true })
    assert.are.equal(0, code)
    assert.are.equal(R.tabular_small.rows, #lines_of(out.text))
    assert.truthy(err.text:find("^\rsfreports: instance 0LG"), err.text)
    assert.truthy(err.text:find("\027[K", 1, true))
    assert.truthy(err.text:match("Success, %d+%.%ds, %d+ polls?\027%[K\n$"), err.text)
    assert.are.equal(1, select(2, err.text:gsub("\n", "")))
  end)

  it("parses filters into API operators and values", function()
    assert.are.same({ column = "AMOUNT", operator = "greaterOrEqual", value = "10" }, cli.parse_filter("AMOUNT>=10"))
    assert.are.same({ column = "Stage Name", operator = "equals", value = { "a, b", "c" } },
      cli.parse_filter([["Stage Name" equals "a, b", c]]))
    assert.are.same({ column = "X", operator = "notContain", value = 'it"s' },
      cli.parse_filter([[X not_contains "it\"s"]]))
    assert.are.same({ column = "X", operator = "equals", value = "" }, cli.parse_filter("X ="))
  end)
end)
