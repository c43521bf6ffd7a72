-- Both engines (the libcurl session and the nginx cosocket transport) describe requests
-- through the C core's one request description (core.plan_*), read their options through
-- one check (core.request_conf), and classify answers through one classifier: misuse
-- raises the same way, hostile answers give the same bounded, one-line errors, and both
-- run reports with run_sync / run_async / fetch_instance (ropts.start gives a handle).
-- Real HTTP: the fake org, and a hostile nginx of this spec's own (spec/support/engines_probe.lua).
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local fakeorg = require "fakeorg"
local nginx = require "nginx"

local R = fakeorg.reports
local encode, decode = fakeorg.encode, fakeorg.decode
local shell_quote = fakeorg.shell_quote

-- The locations of the spec's nginx (nginx.start_sfreports runs sfreports in it).
local SERVER = [[
        location = /h/redirect {
            return 302 "https://user:pw@elsewhere.example/login/path?sid=SECRET123#frag";
        }
        location = /h/moved { return 301; }
        location = /h/noisy { content_by_lua_block { require("engines_probe").noisy() } }
        location = /h/noisy_html { content_by_lua_block { require("engines_probe").noisy_html() } }
        location = /h/big_headers { content_by_lua_block { require("engines_probe").big_headers() } }
        location = /h/big_line { content_by_lua_block { require("engines_probe").big_line() } }
        location = /h/drip { content_by_lua_block { require("engines_probe").drip() } }
        location = /p/options { content_by_lua_block { require("engines_probe").options() } }
        location = /p/requests { content_by_lua_block { require("engines_probe").requests() } }
        location = /p/runs { content_by_lua_block { require("engines_probe").runs() } }
        location / { return 404; }
]]

-- The error a call raises, without the position prefix Lua adds.
local function raised(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return (tostring(err):gsub("^.-:%d+: ", ""))
end

local function one_line(s)
  return type(s) == "string" and not s:find("[%c\127]")
end

describe("the two engines", function()
  local org, srv

  local function stop_all()
    if srv then srv:stop() end
    if org then nginx.stop_orgs({ org }) end
    srv, org = nil, nil
  end

  setup(nginx.guarded(function()
    org = fakeorg.start()
    srv = nginx.start_sfreports({ server = SERVER })
  end, stop_all))
  teardown(stop_all)

  before_each(function()
    org:reset()
  end)

  -- POSTs q to a probe location of the spec's nginx; returns the decoded answer.
  local function probe(path, q)
    local status, out = srv:request(path, { method = "POST",
      extra = "-H 'Content-Type: application/json' --data-binary " .. shell_quote(encode(q)) })
    assert.equal(200, status, out .. srv:error_log())
    return decode(out)
  end

  local function session(opts)
    local o = { base_url = srv.url }
    for k, v in pairs(opts or {}) do o[k] = v end
    return core.session(o)
  end

  describe("options", function()
    local probe_mod = require "engines_probe"

    it("are checked once in C: NaN, infinities, huge and negative numbers raise naming the option", function()
      local ngx_msgs = probe("/p/options", { base_url = srv.url })
      for _, opt in ipairs(probe_mod.NUMERIC_OPTIONS) do
        for _, bad in ipairs(probe_mod.BAD_NUMBERS) do
          local msg = raised(core.session, { base_url = srv.url, [opt] = probe_mod.bad_number(bad) })
          assert.matches("^sfreports: option '" .. opt .. "' must be ", msg)
          if bad == "huge" then
            assert.matches("must be at most", msg)
          else
            assert.matches("must be a finite number >= 0", msg, 1, true)
          end
          assert.equal(msg, ngx_msgs[opt .. "=" .. bad], opt .. "=" .. bad)
        end
      end
    end)

    it("refuse a user_agent with CR/LF on both engines, before anything is sent", function()
      local before = org:stats().requests
      local msg = raised(core.session, { base_url = org.url, user_agent = "ua\r\nX-Injected: 1" })
      assert.equal("sfreports: user_agent must not contain control characters (CR, LF, NUL)", msg)
      assert.equal(msg, probe("/p/options", { base_url = srv.url }).user_agent)
      assert.has_error(function() core.request_conf({ base_url = org.url, user_agent = "a\0b" }) end)
      assert.equal(before, org:stats().requests)
    end)

    it("have one set of defaults, api_version 67.0 included, used by both engines", function()
      local d = core.DEFAULTS
      assert.equal("67.0", d.api_version)
      assert.equal(150, d.timeout)
      assert.equal(10, d.connect_timeout)
      assert.equal(130, d.stall_timeout)
      assert.equal(256 * 1024 * 1024, d.max_response)
      assert.equal("sfreports/" .. core.VERSION, d.user_agent)
      assert.is_true(d.verify)
      local o = core.request_conf({ base_url = org.url .. "//" }):options()
      for k, v in pairs(d) do assert.equal(v, o[k], k) end
      assert.equal(org.url, o.base_url)
      -- the libcurl session runs against the default version
      local s = core.session({ base_url = org.url, token = org.token })
      assert.is_truthy(s:run_sync(R.tabular_small.id))
      s:close()
      local path = "/services/data/v67.0/analytics/reports/" .. R.tabular_small.id
      assert.equal(1, org:stats().by_path[path])
    end)

    it("reject bad numbers in sleep, perform and a request's own timeout", function()
      assert.matches("finite", raised(core.sleep, 0 / 0))
      assert.matches("finite", raised(core.sleep, math.huge))
      assert.matches("at most", raised(core.sleep, 1e300))
      core.sleep(-1) -- a deadline already passed: no wait, as before
      local s = session()
      assert.matches("finite", raised(s.perform, s, 0 / 0))
      assert.matches("finite", raised(s.perform, s, -math.huge))
      assert.same({}, s:perform(1e300)) -- nothing in flight: returns at once
      for _, t in ipairs({ 0 / 0, math.huge, 0, -1, 1e300, "1" }) do
        assert.matches("request option 'timeout' must be a finite number > 0",
          raised(s.request, s, "GET", "/h/noisy", nil, nil, { timeout = t }))
        assert.matches("request option 'timeout'",
          raised(core.plan_request, core.request_conf({ base_url = srv.url }), "GET", "/x", nil, nil, { timeout = t }))
      end
      assert.matches("request options must be", raised(s.request, s, "GET", "/x", nil, nil, 5))
      assert.matches("HTTP status", raised(core.classify, 0 / 0, "application/json", "{}"))
      assert.matches("HTTP status", raised(core.classify, 1e300, "application/json", "{}"))
      s:close()
    end)
  end)

  describe("the request description", function()
    local conf = core.request_conf({ base_url = "https://example.my.salesforce.com/", token = "tok-1" })

    it("carries the defaults, the token for the own host only and Content-Type with a body", function()
      local p = core.plan_request(conf, "POST", "/services/data/x?y=1", '{"a":1}', { ["X-Extra"] = "v" })
      assert.equal("POST", p.method)
      assert.equal("https://example.my.salesforce.com/services/data/x?y=1", p.url)
      assert.equal("https", p.scheme)
      assert.equal("example.my.salesforce.com", p.host)
      assert.equal(443, p.port)
      assert.equal("example.my.salesforce.com", p.authority)
      assert.equal("/services/data/x?y=1", p.target)
      assert.equal('{"a":1}', p.body)
      assert.is_false(p.raw)
      assert.is_false(p.allow_empty)
      assert.is_nil(p.timeout)
      assert.same({ "User-Agent: sfreports/" .. core.VERSION, "Accept: application/json",
        "Accept-Encoding: gzip", "Authorization: Bearer tok-1", "X-Extra: v",
        "Content-Type: application/json" }, p.headers)
      local abs = core.plan_request(conf, "GET", "http://[::1]:8443/token#frag", nil, nil,
        { raw = true, timeout = 2.5 })
      assert.equal("::1", abs.host)
      assert.equal(8443, abs.port)
      assert.equal("[::1]:8443", abs.authority)
      assert.equal("/token", abs.target)
      assert.is_nil(abs.body)
      assert.is_true(abs.raw)
      assert.equal(2.5, abs.timeout)
      for _, line in ipairs(abs.headers) do assert.not_matches("^Authorization", line) end
    end)

    it("lets a caller's header replace a default and leaves framing to the engine", function()
      local p = core.plan_request(conf, "PATCH", "/x", nil, { ["content-type"] = "text/csv",
        ["Host"] = "evil", ["Content-Length"] = "1", ["User-Agent"] = "mine" })
      assert.equal("", p.body) -- PATCH sends a (possibly empty) body
      local text = table.concat(p.headers, "\n")
      assert.not_matches("Content%-Type: application/json", text)
      assert.matches("content%-type: text/csv", text)
      assert.matches("User%-Agent: mine", text)
      assert.not_matches("sfreports/", text)
      assert.not_matches("[Hh]ost:", text)
      assert.not_matches("Content%-Length", text)
      assert.is_true(core.plan_request(conf, "DELETE", "/x").allow_empty)
    end)

    it("raises on misuse and gives an invalid error for a URL nothing can be sent to", function()
      assert.matches("a GET request has no body", raised(core.plan_request, conf, "GET", "/x", ""))
      assert.matches("bad method 'BREW'", raised(core.plan_request, conf, "BREW", "/x"))
      assert.matches("must not contain a '%.' or '%.%.' segment", raised(core.plan_request, conf, "GET", "/a/../b"))
      for _, url in ipairs({ "http://user@host/x", "http://host:99999/x", "http://:80/x", "http://h/a b",
        "http:///x", "https://[::1/x" }) do
        local p, err = core.plan_request(conf, "GET", url)
        assert.is_nil(p, url)
        assert.equal("invalid", err.kind)
        assert.is_false(err.request_sent)
      end
      local p, err = core.plan_run(conf, "sync", "00O/../x")
      assert.is_nil(p)
      assert.equal("invalid", err.kind)
      local run = core.plan_run(conf, "async", R.summary_1.id, nil, false)
      assert.equal("POST", run.method)
      assert.equal("/services/data/v67.0/analytics/reports/" .. R.summary_1.id .. "/instances?includeDetails=false",
        run.target)
      local inst = core.plan_instance(conf, R.summary_1.id, "0LGFk00000A0001MAB", { timeout = 3 })
      assert.equal("GET", inst.method)
      assert.equal(3, inst.timeout)
    end)
  end)

  describe("error values", function()
    it("print without crashing whatever type any field has", function()
      local values = { true, false, {}, function() end, coroutine.create(function() end), io.stdout,
        1.5, 42, core.null, "s\r\nt\27[2J" }
      for _, field in ipairs({ "kind", "status", "code", "message" }) do
        for _, v in ipairs(values) do
          local e = setmetatable({ kind = "api", message = "boom", [field] = v }, core.error_mt)
          local text = tostring(e)
          assert.matches("^sfreports: ", text)
          assert.is_true(one_line(text), text)
        end
      end
      local e = errors.new("api", "boom", { status = true, code = {} })
      assert.equal("sfreports: api error: boom", tostring(e))
      e = errors.new("http", "boom", { status = 404, code = 7 })
      assert.equal("sfreports: http error (HTTP 404, 7): boom", tostring(e))
    end)
  end)

  describe("hostile answers", function()
    -- The same request through both engines: the C session's error and the cosocket one.
    local function both(path)
      local s = session({ token = "tok" })
      local v, c_err = s:request("GET", path)
      s:close()
      assert.is_nil(v)
      local a = probe("/p/requests", { base_url = srv.url, token = "tok", requests = { { path = path } } })
      assert.is_false(a.results[1].ok)
      return c_err, a.results[1].err
    end

    it("a redirect says where it pointed (without query or userinfo) and that none is followed", function()
      local c_err, n_err = both("/h/redirect")
      assert.equal("http", c_err.kind)
      assert.equal(302, c_err.status)
      assert.is_false(c_err.retryable)
      assert.equal("HTTP 302 redirect to https://elsewhere.example/login/path; sfreports does not follow redirects",
        c_err.message)
      assert.equal(c_err.message, n_err.message)
      assert.equal(c_err.kind, n_err.kind)
      assert.equal(tostring(c_err), n_err.text)
      local moved = both("/h/moved")
      assert.equal("HTTP 301 redirect without a Location; sfreports does not follow redirects", moved.message)
    end)

    it("a server's message and code become one bounded line", function()
      local c_err, n_err = both("/h/noisy")
      assert.equal("api", c_err.kind)
      for _, e in ipairs({ c_err, n_err }) do
        assert.is_true(one_line(e.message), e.message)
        assert.is_true(one_line(e.code), e.code)
        assert.is_true(#e.message <= 303, #e.message)
        assert.is_true(#e.code <= 303, #e.code)
        assert.matches("^first  second %[2J third mmm", e.message)
        assert.matches("^BAD  CODE %[2Jccc", e.code)
        assert.matches("%.%.%.$", e.message)
      end
      assert.equal(c_err.message, n_err.message)
      assert.equal(c_err.code, n_err.code)
      local html = both("/h/noisy_html")
      assert.is_true(one_line(html.message), html.message)
      assert.is_true(one_line(html.excerpt), html.excerpt)
      assert.is_true(#html.excerpt <= 203)
    end)

    it("an oversized header block is reported as such by the libcurl engine", function()
      local s = session()
      local v, err = s:request("GET", "/h/big_headers")
      assert.is_nil(v)
      assert.equal("http", err.kind)
      assert.equal("response headers exceed 262144 bytes", err.message)
      assert.is_false(err.retryable)
      -- one line over libcurl's own limit for a header line
      local v2, err2 = s:request("GET", "/h/big_line")
      s:close()
      assert.is_nil(v2)
      assert.equal("http", err2.kind, err2.message)
      assert.matches("^response headers too large %(", err2.message)
      assert.is_false(err2.retryable)
    end)

    it("a request's own timeout caps its total time below the session's (libcurl engine)", function()
      local s = session({ timeout = 60, stall_timeout = 30 })
      -- without the cap the trickling answer completes (so the capped failure below is the cap's)
      local v = s:request("GET", "/h/drip", nil, nil, { raw = true })
      assert.matches("^%[%s+%]$", v)
      local v2, err = s:request("GET", "/h/drip", nil, nil, { timeout = 0.5 })
      assert.is_nil(v2)
      assert.equal("timeout", err.kind, err.message)
      s:close()
      -- a run's too: the slow report answers after slow_delay, the cap fires first
      org:control("config", { slow_delay = 3 })
      local os_ = core.session({ base_url = org.url, token = org.token, timeout = 60 })
      local v3, err3 = os_:run_sync(R.slow.id, nil, true, { timeout = 0.3 })
      assert.is_nil(v3)
      assert.equal("timeout", err3.kind, err3.message)
      os_:close()
    end)
  end)

  describe("report runs", function()
    local function rows_of(v)
      return #v.factMap["T!T"].rows
    end

    it("run_sync, run_async and fetch_instance on the libcurl engine, blocking and with start", function()
      local s = core.session({ base_url = org.url, token = org.token })
      local id = R.tabular_small.id
      assert.equal(R.tabular_small.rows, rows_of(assert(s:run_sync(id))))
      assert.is_nil(assert(s:run_sync(id, nil, false)).factMap["T!T"].rows)
      local h = s:run_sync(id, nil, true, { start = true })
      assert.equal("sfreports.request", getmetatable(h))
      local finished = {}
      while not h:done() do
        for _, f in ipairs(s:perform(1)) do finished[#finished + 1] = f end
      end
      assert.equal(h, finished[1])
      assert.equal(R.tabular_small.rows, rows_of(assert(h:result())))
      -- a bad id with start: a handle that is already finished with the error
      local bad = s:run_sync("00O/../x", nil, nil, { start = true })
      assert.is_true(bad:done())
      assert.same({ bad }, s:perform(0))
      local bv, berr = bad:result()
      assert.is_nil(bv)
      assert.equal("invalid", berr.kind)
      local ih = s:run_async(id, nil, true, { start = true })
      while not ih:done() do s:perform(1) end
      local inst = assert(ih:result())
      local report
      for _ = 1, 50 do
        local fh = s:fetch_instance(id, inst.id, { start = true })
        while not fh:done() do s:perform(1) end
        report = assert(fh:result())
        if report.attributes.status == "Success" then break end
        core.sleep(0.1)
      end
      assert.equal(R.tabular_small.rows, rows_of(report))
      assert.equal(R.tabular_small.rows, rows_of(assert(s:fetch_instance(id, inst.id))))
      s:close()
      local by_path = org:stats().by_path
      local base = "/services/data/v67.0/analytics/reports/" .. id
      assert.equal(3, by_path[base]) -- (the fake org counts paths without the query)
      assert.equal(1, by_path[base .. "/instances"])
    end)

    it("run_sync, run_async and fetch_instance on the cosocket engine, blocking and with start", function()
      local id = R.tabular_small.id
      local a = probe("/p/runs", { base_url = org.url, token = org.token, report = id })
      assert.equal(R.tabular_small.rows, a.sync.rows)
      assert.is_true(a.sync_summary.ok)
      assert.is_nil(a.sync_summary.rows)
      assert.is_true(a.sync_started)
      assert.equal(R.tabular_small.rows, a.sync_start.rows)
      assert.equal("invalid", a.bad_id.err.kind)
      assert.equal("invalid", a.bad_id_start.err.kind)
      assert.is_true(a.async.ok)
      assert.equal("Success", a.fetch.status)
      assert.equal(R.tabular_small.rows, a.fetch.rows)
      assert.equal(R.tabular_small.rows, a.fetch_blocking.rows)
      local by_path = org:stats().by_path
      local base = "/services/data/v67.0/analytics/reports/" .. id
      assert.equal(3, by_path[base])
      assert.equal(1, by_path[base .. "/instances"])
      assert.equal(a.stats.requests, org:stats().requests)
    end)
  end)
end)
