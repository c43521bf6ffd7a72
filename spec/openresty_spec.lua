-- sfreports inside a real nginx (Debian's nginx + the OpenResty Lua module, one worker):
-- the example handlers of examples/nginx against the fake org, the cosocket transport
-- (pooling, TLS, chunked, gzip, timeouts, limits), errors identical to the libcurl
-- engine's, concurrency without blocking the worker, and the phases without cosockets.
local sfreports = require "sfreports"
local writers = require "sfreports.writers"
local core = require "sfreports.core"
local fakeorg = require "fakeorg"
local nginx = require "nginx"

local R = fakeorg.reports
local shell_quote = fakeorg.shell_quote
local encode, decode = fakeorg.encode, fakeorg.decode

local API = "/services/data/v67.0/analytics"
local DETAILS = "?includeDetails=true"

-- The spec's own nginx: the example handlers under /example/... plus test locations
-- that exercise each phase (init, init_worker, set, header_filter, log).
local TEST_HTTP = [[
    lua_ssl_trusted_certificate {{PREFIX}}/ca.pem;
    lua_ssl_verify_depth 3;
    init_by_lua_block {
        local probe = require "ngx_probe"
        local c, err = require("sfreports").new { instance_url = "{{ORG}}",
                                                  access_token = os.getenv("SF_ACCESS_TOKEN") }
        probe.init.client = c
        if c then
            local list, lerr = c:list_reports()
            probe.init.result = { phase = ngx.get_phase(), ok = list ~= nil, count = list and #list,
                                  err = list == nil and probe.err_fields(lerr) or nil }
        else
            probe.init.result = { err = probe.err_fields(err) }
        end
    }
    init_worker_by_lua_block {
        local probe = require "ngx_probe"
        local c, err = require("sfreports").from_env()
        probe.init.worker = { phase = ngx.get_phase(), message = probe.describe(c, err) }
    }
]]
local TEST_SERVER = [[
        location = /probe { content_by_lua_block { require("ngx_probe").probe() } }
        location = /many { content_by_lua_block { require("ngx_probe").many() } }
        location = /echo { content_by_lua_block { require("ngx_probe").echo() } }
        location = /misuse { content_by_lua_block { require("ngx_probe").misuse() } }
        location = /init { content_by_lua_block { require("ngx_probe").init_report() } }
        location ~ ^/blocking/reports/(?<report_id>[A-Za-z0-9]+)\.csv$ {
            content_by_lua_block { require("sfreports_handlers").report_csv({ transport = "curl" }) }
        }
        location = /set {
            set_by_lua_block $sfr_err {
                local c, err = require("sfreports").from_env()
                return require("ngx_probe").describe(c, err)
            }
            return 200 "$sfr_err\n";
        }
        location = /header_filter {
            content_by_lua_block {
                ngx.ctx.client = assert(require("sfreports").from_env())
                ngx.say("body")
            }
            header_filter_by_lua_block {
                local v, err = ngx.ctx.client:run_sync("{{REPORT}}")
                ngx.header["X-Sfreports-Error"] = require("ngx_probe").describe(v, err)
            }
        }
        location = /log {
            content_by_lua_block {
                ngx.ctx.client = assert(require("sfreports").from_env())
                ngx.say("body")
            }
            log_by_lua_block {
                local v, err = ngx.ctx.client:list_reports()
                ngx.log(ngx.WARN, "log probe: ", require("ngx_probe").describe(v, err))
            }
        }
        location / { return 404; }
]]

-- Runs the commands at once (shell background jobs) and waits for them all. Whether
-- their requests overlapped is for the org to say (max_concurrent), not a clock.
local function parallel(cmds)
  local script = {}
  for _, c in ipairs(cmds) do script[#script + 1] = "( " .. c .. " ) &" end
  script[#script + 1] = "wait"
  nginx.run(table.concat(script, "\n"))
end

local function csv_of(report, opts)
  local parts = {}
  assert(writers.csv(report, function(s) parts[#parts + 1] = s return true end, opts))
  return table.concat(parts)
end

-- Byte equality with a short failure message (assert.equal would print megabytes).
local function assert_same_bytes(expected, actual, what)
  if expected ~= actual then
    local i = 1
    while i <= #expected and expected:sub(i, i) == actual:sub(i, i) do i = i + 1 end
    error(("%s differs: %d vs %d bytes, first difference at byte %d: %q vs %q"):format(what,
      #expected, #actual, i, expected:sub(i, i + 40), actual:sub(i, i + 40)), 2)
  end
end

describe("sfreports inside nginx", function()
  local org, tls_org, other_tls_org, example, test, client
  local root = nginx.root()

  local function stop_all()
    if client then client:close() end
    if example then example:stop() end
    if test then test:stop() end
    local orgs = {}
    for _, o in ipairs({ org, tls_org, other_tls_org }) do
      if o then orgs[#orgs + 1] = o end
    end
    nginx.stop_orgs(orgs)
    example, test, org, tls_org, other_tls_org, client = nil, nil, nil, nil, nil, nil
  end

  local function start_all()
    org = fakeorg.start()
    tls_org = fakeorg.start({ tls = true })
    other_tls_org = fakeorg.start({ tls = true }) -- its certificate is not trusted by nginx
    example = nginx.start_example(org)
    -- the workers may run as nobody: they read the trusted certificate from the prefix
    test = nginx.start_sfreports({ org = org, http = TEST_HTTP, server = TEST_SERVER,
      files = { ["ca.pem"] = fakeorg.read_file(tls_org.cafile) },
      vars = { ORG = org.url, REPORT = R.tabular_small.id },
      lua_path = "{{ROOT}}/lua/?.lua;{{ROOT}}/lua/?/init.lua;{{ROOT}}/examples/nginx/?.lua;"
        .. "{{ROOT}}/spec/support/?.lua" })
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end

  setup(nginx.guarded(start_all, stop_all))
  teardown(stop_all)

  before_each(function()
    org:reset()
  end)

  -- Runs /probe on the test nginx; returns the decoded answer.
  local function probe(q)
    local body = encode(q)
    local status, out = test:request("/probe", { method = "POST",
      extra = "-H 'Content-Type: application/json' --data-binary " .. shell_quote(body) })
    assert.equal(200, status, out .. test:error_log())
    return decode(out)
  end

  local function probe_one(path, opts, base)
    local a = probe({ base_url = base or org.url, token = org.token, opts = opts,
      requests = { { path = path } } })
    return a.results and a.results[1], a
  end

  describe("the example handlers", function()
    it("stream a report as CSV identical to the library's CSV writer", function()
      for _, r in ipairs({ R.tabular_wide, R.summary_3, R.matrix, R.tabular_small }) do
        local expected = csv_of(assert(client:run_sync(r.id)))
        local status, body, headers = example:request("/reports/" .. r.id .. ".csv")
        assert.equal(200, status)
        assert.equal("text/csv; charset=utf-8", headers["content-type"])
        assert_same_bytes(expected, body, r.format .. " report " .. r.id)
      end
      -- more than one 64 KB piece: the response was streamed, not buffered whole
      local _, body, headers = example:request("/reports/" .. R.tabular_wide.id .. ".csv")
      assert.is_true(#body > 2 * 65536)
      assert.equal("chunked", headers["transfer-encoding"])
    end)

    it("pass a describe through undecoded, and refuse a bad id before any request", function()
      local status, body, headers = example:request("/reports/" .. R.tabular_small.id .. "/describe")
      assert.equal(200, status)
      assert.matches("^application/json", headers["content-type"])
      assert.same(assert(client:describe(R.tabular_small.id)), decode(body))
      local before = org:stats().requests
      status, body = example:request("/reports/00OFk00000A0001MAX/describe")
      assert.equal(400, status)
      assert.matches("checksum", decode(body).message)
      assert.equal(before, org:stats().requests)
    end)

    it("pass writer options (raw values) through", function()
      local expected = csv_of(assert(client:run_sync(R.summary_1.id)), { raw = true })
      local status, body = example:request("/reports/" .. R.summary_1.id .. ".csv?raw=1")
      assert.equal(200, status)
      assert_same_bytes(expected, body, "raw CSV")
      assert.are_not.equal(csv_of(assert(client:run_sync(R.summary_1.id))), body)
    end)

    it("start an async run, report its status, then wait with ngx.sleep and stream it", function()
      -- the status request (a second curl) comes well inside the run's 2 s
      org:control("config", { async_delay = 2 })
      local status, body = example:request("/reports/" .. R.summary_1.id .. "/runs", { method = "POST" })
      assert.equal(202, status, body)
      local inst = decode(body)
      assert.equal("New", inst.status)
      assert.equal(R.summary_1.id, inst.report_id)
      assert.equal("0LG", inst.id:sub(1, 3))
      status, body = example:request(inst.status_url)
      assert.equal(200, status, body)
      assert.is_truthy(({ New = true, Running = true })[decode(body).status])
      status, body = example:request(inst.csv_url)
      assert.equal(200, status, body)
      local expected = csv_of(assert(client:fetch_instance(R.summary_1.id, inst.id)))
      assert_same_bytes(expected, body, "async CSV")
      local _, final = example:request(inst.status_url)
      assert.equal("Success", decode(final).status)
      assert.is_true(org:stats().instance_polls[inst.id] >= 2) -- it did poll, then waited
    end)

    it("mark a truncated report (X-Report-Truncated: true) and a complete one (false)", function()
      local truncated = assert(client:run_sync(R.tabular_5k.id))
      assert.is_true(truncated.truncated) -- 2,000 of 5,000 rows
      local status, body, headers = example:request("/reports/" .. R.tabular_5k.id .. ".csv")
      assert.equal(200, status, body)
      assert.equal("true", headers["x-report-truncated"])
      assert_same_bytes(csv_of(truncated), body, "truncated CSV")
      status, body, headers = example:request("/reports/" .. R.tabular_small.id .. ".csv")
      assert.equal(200, status, body)
      assert.equal("false", headers["x-report-truncated"])
      -- an asynchronous run's result is capped the same way
      status, body = example:request("/reports/" .. R.tabular_5k.id .. "/runs", { method = "POST" })
      assert.equal(202, status, body)
      local inst = decode(body)
      status, body, headers = example:request(inst.csv_url)
      assert.equal(200, status, body)
      assert.equal("true", headers["x-report-truncated"])
      status, body = example:request(inst.csv_url .. "?all=1")
      assert.equal(400, status)
      assert.matches("/reports/" .. R.tabular_5k.id .. ".csv?all=1", decode(body).message, 1, true)
    end)

    it("stream every row with ?all=1 (run_all), as the library's paged CSV", function()
      local parts = {}
      local paged = assert(client:run_all(R.tabular_5k.id))
      assert(paged:write("csv", function(s) parts[#parts + 1] = s return true end))
      assert.is_true(paged.all_data)
      assert.equal(R.tabular_5k.rows, paged.stats.rows)
      local expected = table.concat(parts)
      org:reset()
      local status, body, headers = example:request("/reports/" .. R.tabular_5k.id .. ".csv?all=1")
      assert.equal(200, status, body)
      assert.equal("false", headers["x-report-truncated"])
      assert.equal("chunked", headers["transfer-encoding"])
      assert_same_bytes(expected, body, "every row")
      assert.is_true(org:stats().requests >= 1 + paged.stats.pages) -- describe + the pages
      status, body = example:request("/reports/" .. R.tabular_5k.id .. ".csv?all=1&details=0")
      assert.equal(400, status)
      assert.equal("invalid", decode(body).error)
    end)

    it("abort a CSV stream whose later page fails, never a 200 that looks complete", function()
      local runs = R.tabular_5k.id .. "%?includeDetails"
      -- a page fails before anything went out: an ordinary JSON error
      org:control("fault", { kind = "invalid_json", count = 100, after = 1, path = runs })
      local status, body = example:request("/reports/" .. R.tabular_5k.id .. ".csv?all=1")
      assert.equal(502, status, body)
      assert.equal("decode", decode(body).error)
      -- only the last page fails: rows went out already (the 4,000 before it are more
      -- than 64 KB of CSV). How many runs the whole report takes, counted at the org:
      org:reset()
      local paged = assert(client:run_all(R.tabular_5k.id))
      for _ in paged:rows() do end
      assert.is_true(paged.all_data)
      local n = org:stats().by_path[API .. "/reports/" .. R.tabular_5k.id]
      assert.is_true(n >= 3, n)
      org:reset()
      org:control("fault", { kind = "invalid_json", count = 100, after = n - 1, path = runs })
      local file = example.dir .. "/aborted.csv"
      local out = nginx.run(("curl -s -o %s -w '%%{http_code} %%{exitcode}' %s"):format(shell_quote(file),
        shell_quote(example.url .. "/reports/" .. R.tabular_5k.id .. ".csv?all=1")))
      assert.equal("200 18", out) -- 18: transfer closed with outstanding read data remaining
      body = fakeorg.read_file(file)
      assert.is_true(#body > 65536, #body)
      assert.is_nil(body:find("^{")) -- CSV rows, not an error document
      local log
      for _ = 1, 40 do
        log = example:error_log()
        if log:find("response aborted", 1, true) then break end
        nginx.run("sleep 0.05")
      end
      assert.matches("CSV stream failed, response aborted: sfreports: decode error", log, 1, true)
      assert.is_nil(log:find(org.token, 1, true))
    end)

    it("run as the README starts them (make nginx-example), whoever starts nginx", function()
      local dir = nginx.run("mktemp -d /tmp/sfreports-example.XXXXXX"):gsub("%s+$", "")
      local url, out, ok
      for _ = 1, 10 do -- a random port, again when taken (other specs run servers too)
        local port = 20000 + math.random(0, 39999)
        out, ok = nginx.run(("make -s -C %s nginx-example NGINX_DIR=%s NGINX_PORT=%d 2>&1"):format(
          shell_quote(root), shell_quote(dir), port))
        assert.is_true(ok, out)
        out, ok = nginx.run(("env -u LUA_PATH -u LUA_CPATH SF_INSTANCE_URL=%s SF_ACCESS_TOKEN=%s "
          .. "nginx -p %s -c %s/nginx.conf -e %s/error.log 2>&1"):format(shell_quote(org.url),
          shell_quote(org.token), shell_quote(dir), shell_quote(dir), shell_quote(dir)))
        if ok then url = "http://127.0.0.1:" .. port break end
        if not out:find("in use", 1, true) then break end
      end
      local function stop()
        nginx.run(("nginx -p %s -c %s/nginx.conf -e %s/error.log -s quit 2>/dev/null; sleep 0.3; rm -rf %s"):format(
          shell_quote(dir), shell_quote(dir), shell_quote(dir), shell_quote(dir)))
      end
      if not url then stop() end
      assert.is_truthy(url, out)
      local expected = csv_of(assert(client:run_sync(R.tabular_small.id)))
      local body, got
      for _ = 1, 40 do
        body, got = nginx.run("curl -sf " .. shell_quote(url .. "/reports/" .. R.tabular_small.id .. ".csv"))
        if got then break end
        nginx.run("sleep 0.05")
      end
      -- started as root, the workers run as nobody and read only the copy in the prefix
      local users = nginx.run("ps -o user= --ppid $(cat " .. shell_quote(dir .. "/nginx.pid") .. ")")
      local log = fakeorg.read_file(dir .. "/error.log") or ""
      stop()
      assert.is_true(got, log)
      assert_same_bytes(expected, body, "CSV from the README's nginx")
      if nginx.user_directive() ~= "" then assert.matches("nobody", users) end
    end)

    it("answer errors as JSON with a status, without the token", function()
      local status, body = example:request("/reports/00OFk00000A0001MAC.csv") -- bad checksum
      assert.equal(400, status)
      assert.equal("invalid", decode(body).error)
      org:control("expire_tokens")
      status, body = example:request("/reports/" .. R.tabular_small.id .. ".csv")
      assert.equal(502, status)
      assert.equal("auth", decode(body).error)
      assert.is_nil(body:find(org.token, 1, true))
      assert.is_nil(example:error_log():find(org.token, 1, true))
    end)
  end)

  describe("concurrency", function()
    local T = 1.0

    it("serves N requests each waiting T seconds together, not one after another, on one worker", function()
      org:control("config", { slow_delay = 0 })
      local expected = csv_of(assert(client:run_sync(R.slow.id)))
      local n, cmds = 10, {}
      local dir = example.dir
      for i = 1, n do
        cmds[i] = ("curl -s -o %s/slow%d.csv %s"):format(shell_quote(dir), i,
          shell_quote(example.url .. "/reports/" .. R.slow.id .. ".csv"))
      end
      org:reset()
      -- each run waits at the org until all n have come (and T after): the spec proves overlap
      -- by what the org saw, however slowly the curls start
      org:control("config", { slow_delay = T, sync_gate = n })
      parallel(cmds)
      for i = 1, n do
        assert_same_bytes(expected, fakeorg.read_file(dir .. "/slow" .. i .. ".csv") or "", "response " .. i)
      end
      local s = org:stats()
      assert.equal(n, s.requests)
      assert.equal(n, s.max_concurrent) -- all of them in flight at the org at once
    end)

    it("(for contrast) the blocking libcurl transport in a handler serialises the worker", function()
      local T = 0.5 -- luacheck: ignore 431 (shorter here: this one costs n x T)
      org:control("config", { slow_delay = T })
      local n, cmds = 3, {}
      for i = 1, n do
        cmds[i] = "curl -s -o /dev/null " .. shell_quote(test.url .. "/blocking/reports/" .. R.slow.id .. ".csv")
      end
      parallel(cmds)
      local s = org:stats()
      assert.equal(n, s.requests)
      assert.equal(1, s.max_concurrent) -- one after another at the org
    end)

    it("runs start/perform requests concurrently in light threads of one nginx request", function()
      local n = 5
      org:control("config", { slow_delay = T, sync_gate = n })
      local status, body = test:request("/many?n=" .. n .. "&path=" .. API .. "/reports/" .. R.slow.id .. DETAILS)
      assert.equal(200, status, body)
      local a = decode(body)
      assert.equal(n, a.pending_after_start)
      assert.equal(0, a.pending_end)
      assert.equal(n, a.finished)
      assert.equal(n, a.stats.requests)
      for i = 1, n do
        assert.is_true(a.results[i].ok, encode(a.results[i].err))
        assert.equal(R.slow.rows, a.results[i].rows)
      end
      assert.equal(n, org:stats().max_concurrent) -- all in flight at the org at once
    end)
  end)

  describe("phases", function()
    it("refuses set_by_lua with a clear error", function()
      local status, body = test:request("/set")
      assert.equal(200, status)
      assert.equal("invalid: sfreports cannot send requests in the nginx 'set' phase: cosockets are "
        .. "not available there; use ngx.timer.at(0, ...) or a content/access phase\n", body)
    end)

    it("refuses header_filter_by_lua and log_by_lua with a clear error", function()
      local status, _, headers = test:request("/header_filter")
      assert.equal(200, status)
      assert.matches("^invalid: sfreports cannot send requests in the nginx 'header_filter' phase",
        headers["x-sfreports-error"])
      test:request("/log")
      local log
      for _ = 1, 40 do -- the log phase runs after the response went out
        log = test:error_log()
        if log:find("log probe", 1, true) then break end
        nginx.run("sleep 0.05")
      end
      assert.matches("log probe: invalid: sfreports cannot send requests in the nginx 'log' phase", log)
    end)

    it("blocks harmlessly in init_by_lua, refuses init_worker, and the init client uses cosockets later", function()
      local status, body = test:request("/init")
      assert.equal(200, status, body)
      local a = decode(body)
      assert.equal("init", a.init.phase)
      assert.is_true(a.init.ok, encode(a.init.err))
      assert.is_true(a.init.count > 0)
      assert.equal("init_worker", a.worker.phase)
      assert.matches("^invalid: .*'init_worker' phase", a.worker.message)
      assert.equal("ngx", a.transport)
      assert.is_true(a.content.ok, encode(a.content.err))
      assert.equal(a.init.count, a.count)
    end)
  end)

  describe("the cosocket transport", function()
    it("decodes gzip and chunked bodies and Content-Length ones", function()
      local r = probe_one(API .. "/reports/" .. R.tabular_wide.id .. DETAILS)
      assert.is_true(r.ok, encode(r.err))
      assert.equal(R.tabular_wide.rows, r.rows)
      assert.equal("gzip", r.headers["content-encoding"])
      assert.equal("chunked", r.headers["transfer-encoding"])
      assert.equal(1, org:stats().gzip)
      r = probe_one("/__fake/ping")
      assert.is_true(r.ok, encode(r.err))
      assert.equal("11", r.headers["content-length"])
      assert.is_nil(r.headers["content-encoding"])
    end)

    it("returns raw answers as the libcurl engine does: gunzipped text; errors classified", function()
      local path = API .. "/reports/" .. R.tabular_small.id .. "/describe"
      local unknown = API .. "/reports/" .. require("sfreports.ids").to18("00OFk00000Z9999") .. "/describe"
      local a = probe({ base_url = org.url, token = org.token, requests = {
        { path = path, raw = true }, { path = unknown, raw = true } } })
      local ok, bad = a.results[1], a.results[2]
      assert.is_true(ok.ok, encode(ok.err))
      assert.equal("gzip", ok.headers["content-encoding"])
      assert.equal("string", type(ok.value))
      assert.same(decode(assert(client:request_raw("GET", path))), decode(ok.value))
      assert.is_false(bad.ok)
      assert.equal("NOT_FOUND", bad.err.code)
    end)

    it("keeps connections alive and pools them across nginx requests", function()
      local path = API .. "/reports/" .. R.tabular_small.id
      local a = probe({ base_url = org.url, token = org.token,
        requests = { { path = path }, { path = path }, { path = path } } })
      assert.equal(3, a.stats.requests)
      assert.is_true(a.stats.connects <= 1) -- 0 when an earlier test left one in the pool
      for i = 1, 3 do assert.is_true(a.results[i].ok) end
      local b = probe({ base_url = org.url, token = org.token, requests = { { path = path } } })
      assert.same({ requests = 1, connects = 0 }, b.stats) -- taken from the pool
      local s = org:stats()
      assert.equal(4, s.requests)
      assert.equal(1, s.connections) -- all four on one connection
    end)

    it("sends User-Agent, Accept-Encoding and the token, but never the token to an absolute URL", function()
      local a = probe({ base_url = test.url, token = "tok-123",
        requests = { { path = "/echo" }, { path = test.url .. "/echo" } } })
      local rel, abs = a.results[1].echo, a.results[2].echo
      assert.equal("sfreports/" .. core.VERSION, rel["user-agent"])
      assert.equal("gzip", rel["accept-encoding"])
      assert.equal("application/json", rel["accept"])
      assert.equal("Bearer tok-123", rel["authorization"])
      assert.is_nil(abs["authorization"])
      assert.equal("sfreports/" .. core.VERSION, abs["user-agent"])
      -- and against the org: the absolute URL is refused for want of a token
      local r = probe_one(org.url .. API .. "/reports")
      assert.equal("auth", r.err.kind)
      assert.equal(401, r.err.status)
    end)

    it("refuses the same misuse as the libcurl session, with the same messages", function()
      local status, body = test:request("/misuse")
      assert.equal(200, status, body)
      local got = decode(body)
      local probe_mod = require "ngx_probe"
      local s = core.session({ base_url = "http://127.0.0.1:1", token = "tok" })
      local expected = {}
      for i, c in ipairs(probe_mod.MISUSE) do
        local ok, err = pcall(s.request, s, c[1], c[2], c[3], c[4])
        expected[i] = ok and "no error" or probe_mod.bare(err)
      end
      expected[#expected + 1] = probe_mod.bare(select(2, pcall(s.set_token, s, "a\nb")))
      s:close()
      for i = 1, #expected do
        assert.matches("^sfreports: ", got.errors[i])
        -- the C session names the bad method its own way (luaL_checkoption)
        if probe_mod.MISUSE[i] and probe_mod.MISUSE[i][1] ~= "BREW" then
          assert.equal(expected[i], got.errors[i])
        end
      end
      assert.equal(0, got.requests)
    end)

    it("verifies TLS against lua_ssl_trusted_certificate", function()
      local path = API .. "/reports/" .. R.tabular_small.id .. DETAILS
      local r = probe_one(path, nil, tls_org.url)
      assert.is_true(r.ok, encode(r.err))
      assert.equal(R.tabular_small.rows, r.rows)
      r = probe_one(path, nil, other_tls_org.url)
      assert.equal("network", r.err.kind)
      assert.is_false(r.err.retryable)
      assert.is_false(r.err.request_sent)
      assert.matches("lua_ssl_trusted_certificate", r.err.message, 1, true)
      r = probe_one(path, { verify = false }, other_tls_org.url)
      assert.is_true(r.ok, encode(r.err))
    end)

    -- The same fault through both engines gives the same error.
    -- The libcurl session (not the client, whose retry policy would hide the first error).
    local function c_engine(path, opts, base)
      local o = { base_url = base or org.url, token = org.token }
      for k, v in pairs(opts or {}) do o[k] = v end
      local s = core.session(o)
      local value, err = s:request("GET", path)
      s:close()
      assert.is_nil(value)
      return err
    end

    local SAME_MESSAGE = { http = true, api = true, auth = true, limit = true }

    for _, case in ipairs({
      { fault = "html502", kind = "http" },
      { fault = "invalid_json", kind = "decode" },
      { fault = "empty200", kind = "decode" },
      { fault = "retry_after", kind = "api" },
      { fault = "limit", kind = "limit" },
      { fault = "server_error", kind = "api" },
      { fault = "reset", kind = "network" },
      { fault = "truncated_gzip", kind = "decode" },
      { fault = "stall", kind = "timeout", seconds = 3, opts = { timeout = 0.5 } },
      { fault = "huge", kind = "limit", bytes = 400000, opts = { max_response = 100000 } },
    }) do
      it("gives the libcurl engine's error for a " .. case.fault .. " response", function()
        local path = API .. "/reports/" .. R.tabular_small.id
        local f = { kind = case.fault, path = R.tabular_small.id, seconds = case.seconds, bytes = case.bytes }
        org:control("fault", f)
        local r = probe_one(path, case.opts)
        org:control("fault", f)
        local c_err = c_engine(path, case.opts)
        assert.is_false(r.ok)
        assert.equal(case.kind, r.err.kind, r.err.message)
        assert.equal(c_err.kind, r.err.kind, c_err.message)
        assert.equal(c_err.status, r.err.status)
        assert.equal(c_err.code, r.err.code)
        assert.equal(c_err.retryable, r.err.retryable)
        assert.equal(c_err.retry_after, r.err.retry_after)
        if SAME_MESSAGE[c_err.kind] and case.fault ~= "huge" then assert.equal(c_err.message, r.err.message) end
        assert.is_nil(r.err.message:find(org.token, 1, true))
      end)
    end

    it("reports a refused connection as a network error before sending", function()
      -- port 1 (tcpmux) is privileged and unused: connecting is refused
      local r = probe_one("/__fake/ping", nil, "http://127.0.0.1:1")
      local c_err = c_engine("/__fake/ping", nil, "http://127.0.0.1:1")
      assert.equal("network", r.err.kind)
      assert.equal(c_err.kind, r.err.kind)
      assert.is_false(r.err.request_sent)
      assert.equal(c_err.request_sent, r.err.request_sent)
      assert.is_true(r.err.retryable)
      assert.equal(c_err.retryable, r.err.retryable)
    end)
  end)
end)
