-- observe_cli_spec: what `sfreports` shows of its HTTP exchanges (issue 22) and its
-- --timeout as the whole command's budget (issue 23), against the fake org's log:
-- -v prints one line per request the server received and --trace-json one JSON object
-- per request (the real bin/sfreports, a child process); neither shows a token, for an
-- access token or a Salesforce CLI login, even from a server that echoes it; on a
-- terminal (cli.main told stderr is one) a retried request says so and `run --all` ends
-- with a summary line, and neither appears in a pipe.
local fakeorg = require "fakeorg"
local hostile = require "hostile"
local nginx = require "nginx"
local cli = require "sfreports.cli"

local q = fakeorg.shell_quote
local R = fakeorg.reports
local read_file = fakeorg.read_file
local cli_run = require "cli_run"
local ROOT = cli_run.ROOT
local TOKEN = "00DFk0000001cli!AQ+s3cr3t=t0k3n/xyz@w"

local function url_encoded(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function lines_of(s)
  local out = {}
  for line in s:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

describe("sfreports -v, --trace-json, retries and summaries", function()
  local org, srv, tmp
  local counter = 0
  local runner = cli_run.new()

  setup(function()
    org = fakeorg.start()
    srv = hostile.start()
    tmp = fakeorg.run("mktemp -d /tmp/sfr-obscli.XXXXXX"):gsub("%s+$", "")
    runner.dir, runner.env = tmp, { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token }
  end)
  teardown(function()
    if srv then srv:stop() end
    if org then nginx.stop_orgs({ org }) end
    if tmp then fakeorg.run("rm -rf " .. q(tmp)) end
  end)
  before_each(function() org:reset() end)

  -- Runs bin/sfreports (from this folder, on this process's LUA_PATH): { out, err, code }.
  -- env: the variables (default: the fake org).
  local function sfr(args, env)
    return runner:run(args, { env = env, cwd = false, keep_lua_path = true })
  end

  -- cli.main in this process, with stderr said to be a terminal (tty) or not.
  local function main(args, tty)
    counter = counter + 1
    local out_path, err_path = tmp .. "/m" .. counter .. ".out", tmp .. "/m" .. counter .. ".err"
    local out, err = assert(io.open(out_path, "wb")), assert(io.open(err_path, "wb"))
    local code = cli.main(args, { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token },
      { stdout = out, stderr = err, stderr_tty = tty })
    out:close()
    err:close()
    return { code = code, out = read_file(out_path), err = read_file(err_path) }
  end

  it("-v: one line per request the server received (method, path, status, ms, bytes, attempt)", function()
    local r = sfr({ "run", R.tabular_5k.id, "--all", "-v", "-o", tmp .. "/all.csv" })
    assert.equal(0, r.code, r.err)
    local stats = org:stats()
    local lines = lines_of(r.err)
    assert.equal(stats.requests, #lines)
    assert.is_true(stats.sync_runs >= 3)
    local runs = 0
    for _, line in ipairs(lines) do
      local method, path, status, ms, attempt, of = line:match("^sfreports: (%u+) "
        .. "(/services/data/v[%d.]+/analytics/%S+) %-> (%d+), (%d+) ms, "
        .. "%d+ [KM]?B in, %d+ [KM]?B out, attempt (%d)/(%d)")
      assert.is_truthy(method, line)
      assert.equal("200", status)
      assert.is_truthy(tonumber(ms))
      assert.equal("1", attempt)
      assert.equal("4", of)
      if path:find("^/services/data/v[%d.]+/analytics/reports/" .. R.tabular_5k.id .. "%?") then runs = runs + 1 end
    end
    assert.equal(stats.sync_runs, runs)
  end)

  it("--trace-json FILE: one JSON object per request", function()
    local trace = tmp .. "/trace.jsonl"
    os.remove(trace)
    local r = sfr({ "run", R.summary_1.id, "--async", "--trace-json", trace, "-o", tmp .. "/s.csv" })
    assert.equal(0, r.code, r.err)
    local stats = org:stats()
    local lines = lines_of(read_file(trace))
    assert.equal(stats.requests, #lines)
    local polls = 0
    for _, line in ipairs(lines) do
      local rec = fakeorg.decode(line)
      assert.equal(200, rec.status)
      assert.is_string(rec.method)
      assert.matches("^/services/data/v", rec.path)
      assert.is_number(rec.elapsed)
      assert.is_number(rec.bytes_in)
      assert.is_number(rec.bytes_out)
      assert.is_boolean(rec.connection_reused)
      assert.equal(R.summary_1.id, rec.report_id)
      assert.matches("^api%-usage=%d+/15000", rec.limits)
      if rec.op == "poll" then polls = polls + 1 end
    end
    local seen = 0
    for _, n in pairs(stats.instance_polls) do seen = seen + n end
    assert.equal(seen, polls)
  end)

  it("neither -v nor --trace-json shows a token a server echoes (access token)", function()
    local id = hostile.new_id()
    srv:set_case("echo_error", id)
    local trace = tmp .. "/echo.jsonl"
    os.remove(trace)
    local r = sfr({ "describe", R.tabular_small.id, "-v", "--trace-json", trace, "--retries", "0" },
      { SF_INSTANCE_URL = srv.url, SF_ACCESS_TOKEN = TOKEN })
    assert.equal(1, r.code)
    assert.equal(1, srv:seen(id).requests)
    local text = r.err .. "\n" .. read_file(trace)
    assert.matches("-> 400", r.err, 1, true)
    assert.matches("Authorization: Bearer [redacted]", read_file(trace), 1, true) -- the echo, masked
    for _, needle in ipairs({ TOKEN, url_encoded(TOKEN), url_encoded(TOKEN):lower(), "s3cr3t" }) do
      assert.is_nil(text:find(needle, 1, true), needle)
    end
  end)

  it("neither -v nor --trace-json shows a token (a Salesforce CLI login, --org)", function()
    local dir = fakeorg.run("mktemp -d " .. q(tmp .. "/sf.XXXXXX")):gsub("%s+$", "")
    local f = assert(io.open(dir .. "/dev.url", "wb"))
    f:write(org.url)
    f:close()
    local trace = tmp .. "/org.jsonl"
    os.remove(trace)
    local r = sfr({ "run", R.tabular_small.id, "--org", "dev", "-v", "--trace-json", trace },
      { PATH = ROOT .. "/spec/support/bin:" .. os.getenv("PATH"), FAKE_SF_DIR = dir })
    assert.equal(0, r.code, r.err)
    local lines = lines_of(read_file(trace))
    assert.equal(org:stats().requests, #lines) -- minting is a /__fake/ call, not counted
    local text = r.err .. read_file(trace)
    assert.is_nil(text:find("fake-minted-token", 1, true))
    assert.is_nil(text:find("fake%-minted"))
  end)

  it("on a terminal, a retried request says so; in a pipe it does not", function()
    org:control("fault", { kind = "html502", count = 1, path = "/reports/" .. R.tabular_small.id })
    local r = main({ "run", R.tabular_small.id, "-o", tmp .. "/retry.csv" }, true)
    assert.equal(0, r.code, r.err)
    assert.matches("sfreports: retrying after 502, attempt 2/4", r.err, 1, true)
    assert.equal(2, org:stats().requests)
    org:reset()
    org:control("fault", { kind = "html502", count = 1, path = "/reports/" .. R.tabular_small.id })
    r = main({ "run", R.tabular_small.id, "-o", tmp .. "/retry.csv" }, false)
    assert.equal(0, r.code, r.err)
    assert.equal("", r.err)
    assert.equal(2, org:stats().requests)
  end)

  it("on a terminal, run --all ends with a summary line; in a pipe or with -q it does not", function()
    local r = main({ "run", R.tabular_5k.id, "--all", "-o", tmp .. "/sum.csv" }, true)
    assert.equal(0, r.code, r.err)
    local stats = org:stats()
    local line = r.err:match("sfreports: 5,000 rows[^\n]*")
    assert.is_truthy(line, r.err)
    assert.matches(("%d report runs, %d requests"):format(stats.sync_runs, stats.requests), line, 1, true)
    assert.matches("API usage [%d,]+/15,000", line)
    r = main({ "run", R.tabular_5k.id, "--all", "-o", tmp .. "/sum.csv" }, false)
    assert.equal(0, r.code)
    assert.is_nil(r.err:find("rows,", 1, true))
    r = main({ "run", R.tabular_5k.id, "--all", "-q", "-o", tmp .. "/sum.csv" }, true)
    assert.equal(0, r.code)
    assert.is_nil(r.err:find("rows,", 1, true))
  end)

  it("--timeout is the whole command's budget, not each request's", function()
    local r = sfr({ "run", R.tabular_20k.id, "--all", "-o", tmp .. "/t.csv" })
    assert.equal(0, r.code, r.err)
    local runs = org:stats().sync_runs -- what the whole pull takes
    org:reset()
    org:control("config", { sync_delay = 0.8 })
    -- each run takes 0.8 s or more: the first run (with the planning run beside it), then
    -- two waves of slices (8 at a time), cannot fit in 1 s, though each one would
    r = sfr({ "run", R.tabular_20k.id, "--all", "--timeout", "1", "-o", tmp .. "/t.csv" })
    assert.equal(1, r.code)
    assert.matches("[Tt]ime", r.err)
    assert.is_true(org:stats().sync_runs < runs)
  end)

  it("--trace-json to a file that cannot be written fails before any request", function()
    local r = sfr({ "list", "--trace-json", tmp .. "/no/such/dir/t.jsonl" })
    assert.equal(1, r.code)
    assert.matches("cannot write the trace file", r.err, 1, true)
    -- no request of this command's: the org may still see a run of the timed-out pull
    -- above (sent just before that command gave up, taken from nginx's accept queue after
    -- the reset), so the check is by path, not by count
    for path in pairs(org:stats().by_path) do
      assert.truthy(path:find(R.tabular_20k.id, 1, true), path)
    end
    r = sfr({ "list", "--trace-json", "" })
    assert.equal(2, r.code)
  end)
end)
