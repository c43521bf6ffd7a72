-- cli_safety_spec: the command line's promises about what it leaves behind and what it
-- prints, proven with the real bin/sfreports (a child process) against the fake org and a
-- hostile server of our own (an nginx that echoes the credentials it receives):
-- -o FILE is replaced only by a complete run, and checked before any request; Ctrl-C
-- (SIGINT to the child, sent once a marker shows the run is waiting) exits 130 naming
-- the async run or deleting it; --retries and --stall-timeout reach the client; no
-- token (raw, URL-encoded) and no control character from a server reaches stderr.
local fakeorg = require "fakeorg"

local q = fakeorg.shell_quote
local R = fakeorg.reports
local read_file = fakeorg.read_file

local cli_run = require "cli_run"

local ROOT = cli_run.ROOT

local write_file = cli_run.write_file

local org, TMP
local runner = cli_run.new()

-- Runs bin/sfreports to the end: { out =, err =, code = } (env: default the fake org).
local function sfr(args, env)
  return runner:run(args, { env = env })
end

-- Starts bin/sfreports in the background; returns its file base (base.pid holds its pid).
local function spawn(args, env)
  return runner:spawn(args, { env = env })
end

local function result(base) return runner:result(base) end

-- Waits until pred() holds (polling; a bound on waiting for a marker, not a timing claim).
-- With `base`, a child that exits meanwhile ends the wait with its output.
local function wait_for(pred, what, base)
  for _ = 1, 1200 do
    local v = pred()
    if v then return v end
    if base and read_file(base .. ".rc") then
      error("the command ended before " .. what .. ": " .. (read_file(base .. ".err") or ""))
    end
    os.execute("sleep 0.05")
  end
  error("gave up waiting for " .. what)
end

local function interrupt(base)
  local pid = wait_for(function() return tonumber((read_file(base .. ".pid") or ""):match("%d+")) end, "the pid")
  os.execute("kill -INT " .. pid)
  wait_for(function() return read_file(base .. ".rc") end, "the exit status")
  return result(base)
end

-- Temporary files left next to an output file.
local function leftovers() return runner:leftovers() end

describe("sfreports command: output files, interruption, retries", function()
  setup(function()
    org = fakeorg.start()
    TMP = runner:use_org(org, "safety")
  end)

  teardown(function()
    if org then org:stop() end
  end)

  before_each(function() org:reset() end)

  describe("-o FILE", function()
    it("is replaced only when the run completes: a page failing mid --all leaves the old file", function()
      local path = TMP .. "/good.csv"
      write_file(path, "keep me\n")
      org:control("fault", { kind = "server_error", count = 50, path = "A0003MAB%?includeDetails", after = 2 })
      local res = sfr({ "run", R.tabular_5k.id, "--all", "-o", path })
      assert.are.equal(1, res.code, res.err)
      assert.truthy(res.err:find("output is incomplete", 1, true), res.err)
      assert.are.equal("keep me\n", read_file(path))
      assert.are.same({}, leftovers())
      org:reset()
      res = sfr({ "run", R.tabular_small.id, "-o", path })
      assert.are.equal(0, res.code, res.err)
      assert.truthy(read_file(path):find("^Opportunity Name,"))
      assert.are.same({}, leftovers())
    end)

    it("is checked before any request: a missing folder or a directory costs no call and no wait", function()
      for _, target in ipairs({ TMP .. "/no/such/dir/x.csv", TMP }) do
        for _, args in ipairs({ { "run", R.never_done.id, "--async" }, { "list" },
          { "describe", R.tabular_small.id } }) do
          local full = {}
          for i, a in ipairs(args) do full[i] = a end
          full[#full + 1] = "-o"
          full[#full + 1] = target
          local res = sfr(full)
          assert.are.equal(1, res.code, res.err)
          assert.truthy(res.err:find("cannot write " .. target, 1, true), res.err)
        end
      end
      assert.are.equal(0, org:stats().requests)
    end)

    it("leaves a read-only file alone and says so before running", function()
      local path = TMP .. "/ro.csv"
      write_file(path, "old\n")
      os.execute("chmod 0444 " .. q(path))
      local writable = io.open(path, "ab") -- root writes anyway: then there is nothing to prove
      if writable then
        writable:close()
        os.execute("chmod 0644 " .. q(path))
        return
      end
      local res = sfr({ "list", "-o", path })
      os.execute("chmod 0644 " .. q(path))
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("cannot write", 1, true))
      assert.are.equal("old\n", read_file(path))
      assert.are.equal(0, org:stats().requests)
    end)
  end)

  describe("Ctrl-C", function()
    -- starts `run never_done --async --progress`, waits for its first progress line
    local function waiting_run(extra)
      local args = { "run", R.never_done.id, "--async", "--progress" }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      local base = spawn(args)
      local iid = wait_for(function() return (read_file(base .. ".err") or ""):match("instance (0LG%w+) ") end,
        "the progress line", base)
      return base, iid
    end

    it("exits 130, names the waiting run and the commands to fetch or delete it, keeps -o FILE", function()
      local path = TMP .. "/keep.csv"
      write_file(path, "keep me\n")
      local base, iid = waiting_run({ "-o", path })
      local res = interrupt(base)
      assert.are.equal(130, res.code, res.err)
      assert.truthy(res.err:find("sfreports: interrupted", 1, true), res.err)
      assert.truthy(res.err:find("sfreports fetch " .. R.never_done.id .. " " .. iid .. " --wait", 1, true), res.err)
      assert.truthy(res.err:find("sfreports delete " .. R.never_done.id .. " " .. iid, 1, true), res.err)
      assert.is_nil(res.err:find("internal error", 1, true))
      assert.is_nil(res.err:find("interrupted!", 1, true))
      assert.are.equal("keep me\n", read_file(path))
      assert.are.same({}, leftovers())
      -- the run is still there
      assert.truthy(sfr({ "instances", R.never_done.id, "--format", "csv" }).out:find(iid, 1, true))
    end)

    it("deletes the waiting run with --delete-on-interrupt", function()
      local base, iid = waiting_run({ "--delete-on-interrupt" })
      local res = interrupt(base)
      assert.are.equal(130, res.code, res.err)
      assert.truthy(res.err:find("deleted the asynchronous run " .. iid, 1, true), res.err)
      local list = sfr({ "instances", R.never_done.id, "--format", "csv" })
      assert.are.equal(0, list.code, list.err)
      assert.is_nil(list.out:find(iid, 1, true))
    end)

    it("exits 130 with a plain message when no asynchronous run is waiting", function()
      org:control("config", { slow_delay = 30 })
      local base = spawn({ "run", R.slow.id, "--format", "jsonl" })
      -- the request is in the org's hands once it counts it
      wait_for(function() return (org:stats().requests or 0) >= 1 end, "the request", base)
      local res = interrupt(base)
      assert.are.equal(130, res.code, res.err)
      assert.are.equal("sfreports: interrupted\n", res.err)
      assert.are.equal("", res.out)
    end)
  end)

  describe("--retries and --stall-timeout", function()
    it("--retries 0 sends a failing request once; the default tries again", function()
      org:control("fault", { kind = "html502", count = 1, path = "/analytics/reports$" })
      local res = sfr({ "list", "--retries", "0" })
      assert.are.equal(1, res.code)
      assert.are.equal(1, org:stats().requests)
      org:reset()
      org:control("fault", { kind = "html502", count = 1, path = "/analytics/reports$" })
      res = sfr({ "list" })
      assert.are.equal(0, res.code, res.err)
      assert.are.equal(2, org:stats().requests)
    end)

    it("--stall-timeout gives up on a silent response", function()
      org:control("fault", { kind = "stall", seconds = 20, path = "/analytics/reports$" })
      local res = sfr({ "list", "--stall-timeout", "0.5", "--retries", "0" })
      assert.are.equal(1, res.code)
      assert.truthy(res.err:find("no data received for 0.5", 1, true), res.err)
    end)

    it("exits 2 for malformed values", function()
      for _, args in ipairs({ { "--retries", "-1" }, { "--retries", "2.5" }, { "--retries", "lots" },
        { "--stall-timeout", "0" }, { "--stall-timeout", "nan" }, { "--stall-timeout", "inf" } }) do
        local res = sfr({ "list", args[1], args[2] })
        assert.are.equal(2, res.code, args[1] .. " " .. args[2])
        assert.truthy(res.err:find(args[1], 1, true))
      end
      assert.are.equal(0, org:stats().requests)
    end)
  end)

  describe("usage errors", function()
    it("suggest the command meant by a typo", function()
      for typo, meant in pairs({ rn = "run", fecth = "fetch", LIST = "list" }) do
        local res = sfr({ typo })
        assert.are.equal(2, res.code)
        local want = 'unknown command "' .. typo .. '" (did you mean ' .. meant .. "?)"
        assert.truthy(res.err:find(want, 1, true), res.err)
      end
      assert.is_nil(sfr({ "frobnicate" }).err:find("did you mean", 1, true))
    end)
  end)

  describe("the token", function()
    it("is trimmed of blanks, a line end and a 'Bearer ' prefix", function()
      local res = sfr({ "list", "--format", "csv" },
        { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = "Bearer " .. org.token .. "\n" })
      assert.are.equal(0, res.code, res.err)
      assert.truthy(res.out:find("^id,name,url\n"))
    end)
  end)
end)

-- A server that answers every API request with a 400 whose message repeats the
-- Authorization header (raw and URL-encoded) and tries to clear the terminal.
local ECHO_TOKEN = "00DECHO!s3cr3t+tok/en=@x"
local ECHO_SERVER = [==[
        location = /__fake/mint_token {
            default_type application/json;
            return 200 '{"ok":true,"token":"{{TOKEN}}"}';
        }
        location / {
            default_type application/json;
            content_by_lua_block {
                local auth = ngx.var.http_authorization or ""
                local token = auth:gsub("^Bearer ", "")
                ngx.status = 400
                ngx.say(require("cjson").encode({ { errorCode = "ECHO\27[2J",
                    message = "you sent " .. auth .. " or " .. ngx.escape_uri(token) .. "\27[2J\r\nnext line" } }))
            }
        }
]==]

describe("sfreports command against a server that echoes credentials", function()
  local srv, dir

  setup(function()
    local nginx = require "nginx"
    srv = nginx.start({ conf = nginx.conf({ connections = 64, temp_paths = true, server = ECHO_SERVER }),
      vars = { TOKEN = ECHO_TOKEN } })
    dir = srv.dir .. "/cli"
    os.execute("mkdir -p " .. q(dir))
    TMP = dir
    runner.dir = TMP
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  -- `marker`: an alphanumeric run of the token, the same in every encoding of it
  local function assert_clean(res, token, marker)
    assert.are.equal(1, res.code)
    assert.truthy(res.err:find("you sent", 1, true), res.err) -- the echo did reach the CLI
    assert.truthy(token:find(marker, 1, true))
    assert.is_nil(res.err:find(marker, 1, true), res.err)
    assert.is_nil(res.err:sub(1, -2):find("[%c\127]"), res.err) -- one line, nothing for the terminal
    assert.are.equal("\n", res.err:sub(-1))
  end

  it("never prints the token of a Salesforce CLI login (--org), raw or URL-encoded", function()
    local sfdir = dir .. "/sf-state"
    os.execute("mkdir -p " .. q(sfdir))
    write_file(sfdir .. "/echo.url", srv.url)
    local res = sfr({ "list", "--org", "echo", "--retries", "0" },
      { PATH = ROOT .. "/spec/support/bin:/usr/bin:/bin", FAKE_SF_DIR = sfdir })
    assert.truthy((read_file(sfdir .. "/calls") or ""):find("show-access-token", 1, true))
    assert_clean(res, ECHO_TOKEN, "s3cr3t")
  end)

  it("never prints SF_ACCESS_TOKEN, raw or URL-encoded, and strips control characters", function()
    local token = "00DENV!envs3cr3t+def/ghi=jk"
    local res = sfr({ "describe", R.tabular_small.id, "--retries", "0" },
      { SF_INSTANCE_URL = srv.url, SF_ACCESS_TOKEN = token })
    assert_clean(res, token, "envs3cr3t")
    assert.is_nil(res.err:find("\27", 1, true))
    assert.is_nil(res.err:find("\r", 1, true))
  end)
end)
