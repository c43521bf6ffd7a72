-- cli_firsthour_spec: issue 23's command-line additions and messages, proven with the real
-- bin/sfreports (a child process) against the fake org: --no-header, --delimiter, --bom,
-- --limit, --subtotals, --grid, a report given by its URL, --key, profiles in the config
-- file, the messages (operators, usage, connection, TLS, build hint), the examples' usage
-- and the progress of --all.
local fakeorg = require "fakeorg"
local cli_run = require "cli_run"

local q = fakeorg.shell_quote
local R = fakeorg.reports
local ROOT, write_file = cli_run.ROOT, cli_run.write_file

local org, TMP
local runner = cli_run.new()

-- Runs bin/sfreports with args and env (default: the fake org): { out =, err =, code = }.
local function sfr(args, env) return runner:run(args, { env = env }) end

local function lines(s)
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

local function has(s, needle) return s:find(needle, 1, true) ~= nil end

-- The report runs (POST .../reports/ID) the org saw since the last reset.
local function runs_seen()
  local n = 0
  for _, b in ipairs(org:bodies()) do
    if b.method == "POST" and tostring(b.uri):find("/analytics/reports/00O", 1, true) then n = n + 1 end
  end
  return n
end

describe("sfreports command, the first hour (issue 23)", function()
  setup(function()
    org = fakeorg.start()
    TMP = runner:use_org(org, "firsthour")
    os.execute("mkdir -p " .. q(TMP .. "/config/sfreports"))
  end)

  teardown(function()
    if org then org:stop() end
  end)

  before_each(function() org:reset() end)

  describe("output shape", function()
    it("--no-header drops the header line and nothing else", function()
      local with = sfr({ "run", R.tabular_small.id })
      local without = sfr({ "run", R.tabular_small.id, "--no-header" })
      assert.are.equal(0, without.code, without.err)
      local header = with.out:match("^[^\n]*\n")
      assert.truthy(header:find("^Opportunity Name,"))
      assert.are.equal(with.out:sub(#header + 1), without.out)
    end)

    it("--delimiter ';' separates with ';' and quotes fields holding it, not commas", function()
      local res = sfr({ "run", R.tabular_small.id, "--delimiter", ";", "--raw", "--columns",
        "OPPORTUNITY_NAME,AMOUNT,DESCRIPTION" })
      assert.are.equal(0, res.code, res.err)
      assert.are.equal("Opportunity Name;Amount;Description", lines(res.out)[1])
      -- a description with a comma is no longer quoted for it; one with ';' would be
      assert.truthy(has(res.out, ";Needs budget approval, then legal review\n"), res.out)
      local tab = sfr({ "run", R.tabular_small.id, "--delimiter", "tab", "--columns", "OPPORTUNITY_NAME,AMOUNT" })
      assert.are.equal("Opportunity Name\tAmount", lines(tab.out)[1])
    end)

    it("--bom starts the CSV with the UTF-8 byte order mark, once", function()
      local res = sfr({ "run", R.tabular_small.id, "--bom" })
      assert.are.equal(0, res.code, res.err)
      assert.are.equal("\239\187\191Opportunity Name,", res.out:sub(1, 20))
      assert.are.equal(1, select(2, res.out:gsub("\239\187\191", "")))
    end)

    it("refuses the shape options where they mean nothing (exit 2, before any request)", function()
      for _, args in ipairs({
        { "run", R.tabular_small.id, "--delimiter", ";", "--format", "json" },
        { "run", R.tabular_small.id, "--delimiter", "ab" },
        { "run", R.tabular_small.id, "--delimiter", '"' },
        { "run", R.tabular_small.id, "--bom", "--format", "table" },
        { "run", R.tabular_small.id, "--no-header", "--format", "jsonl" },
        { "run", R.tabular_small.id, "--limit", "0" },
        { "run", R.tabular_small.id, "--limit", "2.5" },
        { "run", R.tabular_small.id, "--key", "AMOUNT" },
        { "run", R.tabular_5k.id, "--all", "--sort", "AMOUNT" },
      }) do
        local res = sfr(args)
        assert.are.equal(2, res.code, table.concat(args, " ") .. ": " .. res.err)
        assert.truthy(has(res.err, "usage: sfreports run REPORT_ID"), res.err)
      end
      assert.are.equal(0, runs_seen())
      local sorted = sfr({ "run", R.tabular_5k.id, "--all", "--sort", "AMOUNT" })
      assert.truthy(has(sorted.err, "--key COLUMN"), sorted.err)
      assert.falsy(has(sorted.err, "opts."), sorted.err)
    end)
  end)

  describe("--limit N", function()
    it("writes the first N rows and exits 0 even when the report was truncated", function()
      local full = sfr({ "run", R.tabular_5k.id, "--raw" })
      assert.are.equal(3, full.code)
      local res = sfr({ "run", R.tabular_5k.id, "--raw", "--limit", "3" })
      assert.are.equal(0, res.code, res.err)
      assert.are.equal("", res.err)
      -- the header and the same first three rows as the whole run (rows hold no newline in raw ids)
      local first = sfr({ "run", R.tabular_5k.id, "--raw", "--columns", "OPPORTUNITY_NAME,AMOUNT", "--limit", "3" })
      local all = sfr({ "run", R.tabular_5k.id, "--raw", "--columns", "OPPORTUNITY_NAME,AMOUNT" })
      local fl, al = lines(first.out), lines(all.out)
      assert.are.equal(4, #fl)
      for i = 1, 4 do assert.are.equal(al[i], fl[i]) end
    end)

    it("more than the run returned: the truncation warning and exit 3 stay", function()
      local res = sfr({ "run", R.tabular_5k.id, "--columns", "OPPORTUNITY_NAME", "--limit", "3000" })
      assert.are.equal(3, res.code, res.err)
      assert.truthy(has(res.err, "truncated"), res.err)
      assert.are.equal(2001, #lines(res.out))
    end)

    it("with --all, stops paging once N rows are written (the org sees two runs, not every page)", function()
      local res = sfr({ "run", R.tabular_20k.id, "--all", "--limit", "5", "--columns", "OPPORTUNITY_NAME,AMOUNT" })
      assert.are.equal(0, res.code, res.err)
      assert.are.equal(6, #lines(res.out))
      assert.truthy(runs_seen() <= 2, "runs: " .. runs_seen())
    end)

    it("applies to lists too", function()
      local res = sfr({ "list", "--format", "csv", "--limit", "1" })
      assert.are.equal(0, res.code, res.err)
      assert.are.equal(2, #lines(res.out))
    end)
  end)

  describe("aggregates", function()
    it("--subtotals is --groups: the groups() table", function()
      local a = sfr({ "run", R.summary_3.id, "--subtotals" })
      local b = sfr({ "run", R.summary_3.id, "--groups" })
      assert.are.equal(0, a.code, a.err)
      assert.are.equal(b.out, a.out)
      assert.truthy(a.out:find("^Type,Stage,Lead Source,Sum of Amount"), a.out:sub(1, 200))
    end)

    it("--grid writes a matrix as a grid: down groups by across groups, with totals", function()
      local res = sfr({ "run", R.matrix.id, "--grid", "--raw" })
      assert.are.equal(0, res.code, res.err)
      local ls = lines(res.out)
      local header = ls[1]
      assert.truthy(header:find("^Type,Stage,Q"), header)
      assert.truthy(header:find(",Total$"), header)
      -- the library's grid, cell for cell (the grand total is the last line's last field)
      local sfreports = require "sfreports"
      local client = assert(sfreports.new { instance_url = org.url, access_token = org.token })
      local report = assert(client:run_sync(R.matrix.id))
      local g = report:grid(1)
      assert.are.equal(#g.down + 1, #ls)
      local last = ls[#ls]
      local total = g.values[#g.down][#g.across]
      assert.are.equal(require("sfreports.writers").format_number(total), last:match("([^,]*)$"))
      assert.truthy(last:find("^,,"), last)
      assert.truthy(has(res.err, "--grid=RowCount"), res.err)
    end)

    it("--grid=AGG picks an aggregate; an unknown one and a tabular report fail naming why", function()
      local res = sfr({ "run", R.matrix.id, "--grid=RowCount", "--raw" })
      assert.are.equal(0, res.code, res.err)
      assert.are.equal("", res.err)
      local bad = sfr({ "run", R.matrix.id, "--grid=nope" })
      assert.are.equal(1, bad.code)
      assert.truthy(has(bad.err, "s!AMOUNT"), bad.err)
      local tab = sfr({ "run", R.tabular_small.id, "--grid" })
      assert.are.equal(1, tab.code)
      assert.truthy(has(tab.err, "summary or matrix"), tab.err)
    end)
  end)

  describe("a report by its URL", function()
    it("takes the Lightning and Classic URLs as the id", function()
      local by_id = sfr({ "run", R.tabular_small.id })
      for _, url in ipairs({
        "https://acme.lightning.force.com/lightning/r/Report/" .. R.tabular_small.id .. "/view",
        "https://acme.lightning.force.com/lightning/r/Report/" .. R.tabular_small.id .. "/view?queryScope=userFolders",
        "https://acme.my.salesforce.com/" .. R.tabular_small.id,
      }) do
        local res = sfr({ "run", url })
        assert.are.equal(0, res.code, url .. ": " .. res.err)
        assert.are.equal(by_id.out, res.out)
      end
      local d = sfr({ "describe", "https://acme.lightning.force.com/lightning/r/Report/" .. R.summary_1.id .. "/view",
        "--format", "csv" })
      assert.are.equal(0, d.code, d.err)
    end)

    it("a URL without a report id is a usage error naming the expected form", function()
      local res = sfr({ "run", "https://acme.lightning.force.com/lightning/o/Report/home" })
      assert.are.equal(2, res.code)
      assert.truthy(has(res.err, "/lightning/r/Report/00O"), res.err)
      assert.are.equal(0, runs_seen())
    end)
  end)

  describe("--all in command-line words", function()
    it("a column that cannot be a key is named, with no library option in the message", function()
      local res = sfr({ "run", R.tabular_5k.id, "--all", "--key", "OPPORTUNITY_NAME" })
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "OPPORTUNITY_NAME cannot be a paging key"), res.err)
      assert.falsy(has(res.err, "opts."), res.err)
    end)

    it("--key chooses the paging column: every row once", function()
      local res = sfr({ "run", R.tabular_5k.id, "--all", "--key", "AMOUNT", "--raw", "--columns", "OPPORTUNITY_NAME" })
      assert.are.equal(0, res.code, res.err)
      assert.truthy(#lines(res.out) >= 5001)
      local sorted = {}
      for i, b in ipairs(org:bodies()) do
        if b.body ~= fakeorg.decode("null") and tostring(b.body):find('"sortColumn":"AMOUNT"', 1, true) then
          sorted[#sorted + 1] = i
        end
      end
      assert.truthy(#sorted >= 1)
    end)

    it("the library's words become the CLI's", function()
      package.loaded["sfreports.cli.commands"] = nil
      local Session = require "sfreports.cli.session"
      local msg = Session.cli_words("more than 2000 rows are alike on every paging key (CLOSE_DATE equals"
        .. " 2024-01-01, AMOUNT greaterThan 5); they cannot be fetched completely: add a filter, or give more"
        .. " keys with opts.key")
      assert.are.equal("more than 2000 rows are alike on every paging key (CLOSE_DATE = 2024-01-01, AMOUNT > 5);"
        .. " they cannot be fetched completely: add a filter, or name more paging columns with --key"
        .. " COLUMN,COLUMN", msg)
      assert.truthy(has(Session.cli_words("no column to page on; add one with opts.key"), "with --key COLUMN"))
    end)
  end)

  describe("profiles", function()
    local CONFIG
    local function config(text, mode)
      CONFIG = TMP .. "/config/sfreports/config"
      write_file(CONFIG, text)
      os.execute("chmod " .. mode .. " " .. q(CONFIG))
    end
    local function env(extra)
      local e = { XDG_CONFIG_HOME = TMP .. "/config", HOME = TMP }
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    it("--profile NAME (or SFREPORTS_PROFILE) runs against the profile's org", function()
      config("# orgs\n[fake]\nflow = token\ninstance_url = " .. org.url .. "\naccess_token_env = FAKE_TOKEN\n", "600")
      local res = sfr({ "run", R.tabular_small.id, "--profile", "fake", "--limit", "1" },
        env({ FAKE_TOKEN = org.token }))
      assert.are.equal(0, res.code, res.err)
      assert.are.equal(2, #lines(res.out))
      res = sfr({ "list", "--format", "csv" }, env({ FAKE_TOKEN = org.token, SFREPORTS_PROFILE = "fake" }))
      assert.are.equal(0, res.code, res.err)
    end)

    it("an OAuth flow with the secret from the environment", function()
      config("[cc]\nflow = client_credentials\nlogin_url = " .. org.url .. "\nclient_id = app-1\n"
        .. "client_secret_env = CC_SECRET\n", "644")
      org:control("oauth", { client_id = "app-1", client_secret = "s3cr3t-x" })
      local res = sfr({ "run", R.tabular_small.id, "--profile", "cc", "--limit", "1" }, env({ CC_SECRET = "s3cr3t-x" }))
      assert.are.equal(0, res.code, res.err)
      -- the secret is the variable's: a wrong one is refused by the org, and never shown
      res = sfr({ "run", R.tabular_small.id, "--profile", "cc" }, env({ CC_SECRET = "wrong-s3cr3t" }))
      assert.are.equal(1, res.code)
      assert.falsy(has(res.err, "wrong-s3cr3t"), res.err)
      res = sfr({ "run", R.tabular_small.id, "--profile", "cc" }, env())
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "CC_SECRET, which is not set"), res.err)
    end)

    it("refuses a secret in plain text unless opted in, and then in a file others can read", function()
      config("[cc]\nflow = client_credentials\nlogin_url = " .. org.url .. "\nclient_id = app-1\n"
        .. "client_secret = plain-s3cr3t\n", "600")
      local res = sfr({ "list", "--profile", "cc" }, env())
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "client_secret_env"), res.err)
      assert.falsy(has(res.err, "plain-s3cr3t"), res.err)
      config("[cc]\nflow = client_credentials\nlogin_url = " .. org.url .. "\nclient_id = app-1\n"
        .. "plaintext_secrets = yes\nclient_secret = plain-s3cr3t\n", "644")
      res = sfr({ "list", "--profile", "cc" }, env())
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "chmod 600"), res.err)
      assert.falsy(has(res.err, "plain-s3cr3t"), res.err)
      assert.are.equal(0, #org:bodies())
      os.execute("chmod 600 " .. q(CONFIG))
      res = sfr({ "list", "--profile", "cc", "--format", "csv" }, env())
      assert.are.equal(0, res.code, res.err)
    end)

    it("an unknown profile lists the ones there are; --org with --profile is a usage error", function()
      config("[a]\nflow = sf_cli\n[b]\nflow = sf_cli\n", "600")
      local res = sfr({ "list", "--profile", "zz" }, env())
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "no profile [zz]") and has(res.err, "a, b"), res.err)
      res = sfr({ "list", "--profile", "a", "--org", "x" }, env())
      assert.are.equal(2, res.code)
      config("[a]\nflow = magic\n", "600")
      res = sfr({ "list", "--profile", "a" }, env())
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "flow \"magic\""), res.err)
    end)
  end)

  describe("messages", function()
    it("an unknown filter operator lists the operators", function()
      local res = sfr({ "run", R.tabular_small.id, "--filter", "AMOUNT ~ 1" })
      assert.are.equal(2, res.code)
      assert.truthy(has(res.err, "unknown operator '~'"), res.err)
      assert.truthy(has(res.err, "greaterOrEqual") and has(res.err, ">="), res.err)
    end)

    it("the usage after an error is the command's own; a command's typo gets a suggestion", function()
      local res = sfr({ "run", R.tabular_small.id, "--bogus" })
      assert.are.equal(2, res.code)
      assert.truthy(has(res.err, "usage: sfreports run REPORT_ID [OPTIONS]"), res.err)
      assert.falsy(has(res.err, "usage: sfreports COMMAND"), res.err)
      res = sfr({ "fetch", R.tabular_small.id })
      assert.truthy(has(res.err, "usage: sfreports fetch REPORT_ID INSTANCE_ID"), res.err)
      res = sfr({ "rn", R.tabular_small.id })
      assert.are.equal(2, res.code)
      assert.truthy(has(res.err, "did you mean run?"), res.err)
    end)

    it("a connection error is said once and says whether a proxy was used", function()
      local res = sfr({ "run", R.tabular_small.id, "--retries", "0" },
        { SF_INSTANCE_URL = "http://127.0.0.1:1", SF_ACCESS_TOKEN = org.token })
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "no proxy"), res.err)
      local _, n = res.err:gsub("Couldn't connect to server", "")
      assert.are.equal(1, n, res.err)
      res = sfr({ "run", R.tabular_small.id, "--retries", "0" },
        { SF_INSTANCE_URL = "https://127.0.0.1:1", SF_ACCESS_TOKEN = org.token,
          https_proxy = "http://user:pw@127.0.0.1:1" })
      assert.truthy(has(res.err, "through the proxy http://127.0.0.1:1 (from https_proxy)"), res.err)
      assert.falsy(has(res.err, "pw@"), res.err)
    end)

    it("https to a plain-http port says so", function()
      local port = org.url:match(":(%d+)$")
      local res = sfr({ "run", R.tabular_small.id, "--retries", "0" },
        { SF_INSTANCE_URL = "https://127.0.0.1:" .. port, SF_ACCESS_TOKEN = org.token })
      assert.are.equal(1, res.code)
      assert.truthy(has(res.err, "answered without TLS"), res.err)
    end)

    it("the hint for a library not built for the interpreter is the exact make command", function()
      local Session = require "sfreports.cli.session"
      local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("(%d+%.%d+)"))
      local msg = Session.build_hint("module 'sfreports.core' not found:\n\tno file 'x'")
      assert.truthy(has(msg, "`make LUA=" .. runtime .. "`"), msg)
      assert.falsy(has(msg, "\n"), msg)
    end)
  end)

  describe("examples/async_*.lua", function()
    it("with an org and no report ids: a usage message, not a traceback", function()
      for _, name in ipairs({ "async_blocking", "async_sleep_hook", "async_yield" }) do
        local res = runner:run({}, { bin = ROOT .. "/examples/" .. name .. ".lua" })
        assert.are.equal(2, res.code, name .. ": " .. res.err)
        assert.truthy(res.err:find("^usage: "), res.err)
        assert.falsy(has(res.err, "traceback"), res.err)
      end
    end)
  end)

  describe("the progress of --all", function()
    it("is a line per page with --progress, on stderr only; none in a pipe without it", function()
      local plain = sfr({ "run", R.tabular_5k.id, "--all", "--raw" })
      local shown = sfr({ "run", R.tabular_5k.id, "--all", "--raw", "--progress" })
      assert.are.equal(0, shown.code, shown.err)
      assert.are.equal(plain.out, shown.out)
      assert.are.equal("", plain.err)
      assert.falsy(has(plain.out, "--all:"))
      local n = select(2, shown.err:gsub("sfreports: %-%-all: [%d,]+ rows, %d+ pages?, %d+ report runs?", ""))
      assert.truthy(n >= 3, shown.err)
      assert.truthy(has(shown.err, "5,000 rows"), shown.err)
    end)

    it("rewrites one line on a terminal", function()
      local cli = require "sfreports.cli"
      local out, err = {}, {}
      local status = cli.main({ "run", R.tabular_5k.id, "--all" },
        { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token },
        { stdout = { write = function(_, ...) for _, v in ipairs({ ... }) do out[#out + 1] = v end return true end,
                     flush = function() return true end },
          stderr = { write = function(_, ...) for _, v in ipairs({ ... }) do err[#err + 1] = v end return true end },
          stderr_tty = true })
      assert.are.equal(0, status)
      local e = table.concat(err)
      assert.truthy(e:find("\rsfreports: %-%-all: 5,000 rows"), e)
      assert.falsy(table.concat(out):find("--all:", 1, true))
    end)
  end)
end)
