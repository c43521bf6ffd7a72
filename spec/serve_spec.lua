-- luacheck: std +busted
-- sfreports.serve in a real nginx with 4 workers against the fake org: one run for 500
-- concurrent requests of a cold report, stale entries served at once while exactly one
-- refresh runs, ETag/304, a dead refresher's lock expiring, the bounded wait (503), a dict
-- too small (served whole, logged), the query-string allow-list, errors. Everything is
-- proved by what the fake org counted (sync_runs, async_runs, inflight) and the headers
-- nginx sent, not by a clock.
local fakeorg = require "fakeorg"
local nginx = require "nginx"

local R = fakeorg.reports
local shell_quote = fakeorg.shell_quote

local CONF = nginx.conf({
  workers = 4, env = { "SF_INSTANCE_URL", "SF_ACCESS_TOKEN" }, connections = 2048, listen = "backlog=1024",
  lua_path = nginx.LUA_PATH, luajit_core = true,
  http = [[
    lua_shared_dict sfreports 32m;
    lua_shared_dict tiny 64k;
    init_by_lua_block { require "sfreports.serve"; require "serve_probe" }
    init_worker_by_lua_block { require("serve_probe").warm() }
]],
  server = [[
        location ~ ^/(?<loc>\w+)/(?<report_id>\w+)$ {
            content_by_lua_block { require("serve_probe").handle(ngx.var.loc) }
        }
        location = /lock { content_by_lua_block { require("serve_probe").lock() } }
        location = /purge { content_by_lua_block { require("serve_probe").purge() } }
]],
})

describe("sfreports.serve in nginx (4 workers)", function()
  local org, srv, warm_cache

  setup(function()
    local root = nginx.root()
    nginx.build_luajit_core(root)
    org = fakeorg.start({ workers = 2 })
    local ok, err = pcall(function()
      srv = nginx.start({ conf = CONF, vars = { ROOT = root },
        env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token } })
    end)
    if not ok then
      org:stop()
      error(err, 0)
    end
    -- the warm-up (serve.schedule in init_worker) has run, or is running: this first
    -- visitor waits for it, so that no test counts its run
    local _, _, h = srv:request("/warm/" .. R.summary_1.id)
    warm_cache = h["x-cache"]
  end)
  teardown(function()
    if srv then srv:stop() end
    if org then nginx.stop_orgs({ org }) end
  end)
  before_each(function()
    org:reset()
    -- every test starts with an empty cache: purge what the tests use
    for _, loc in ipairs({ "cold", "short", "busy", "tiny", "json", "async", "allow" }) do
      for _, r in ipairs({ R.tabular_small, R.tabular_5k, R.tabular_wide, R.filtered }) do
        srv:request(("/purge?loc=%s&id=%s"):format(loc, r.id))
      end
    end
  end)

  local function config(t) assert.is_true(org:control("config", t).ok) end

  -- n requests of path at once: a list of { code, cache, etag }. curl --parallel keeps at
  -- most 300 transfers in flight, so the requests are split over several curl processes
  -- (250 each) started together.
  local function parallel(n, path)
    local script, per = {}, 250
    for p = 1, math.ceil(n / per) do
      local file = srv.dir .. "/urls" .. p
      local f = assert(io.open(file, "w"))
      for _ = 1, math.min(per, n - (p - 1) * per) do
        f:write(('url = "%s%s"\noutput = "/dev/null"\n'):format(srv.url, path))
      end
      f:close()
      script[#script + 1] = ("curl -s --parallel --parallel-immediate --parallel-max %d --max-time 60 "
        .. "-w '%%{http_code} %%header{x-cache} %%header{etag}\\n' -K %s > %s.out 2>/dev/null &"):format(
          per, shell_quote(file), shell_quote(file))
    end
    script[#script + 1] = "wait; cat " .. shell_quote(srv.dir) .. "/urls*.out; rm -f " .. shell_quote(srv.dir)
      .. "/urls*"
    local out = nginx.run(table.concat(script, "\n"))
    local list = {}
    for code, cache, etag in out:gmatch("(%d+) (%S*) ([^\n]*)\n") do
      list[#list + 1] = { code = tonumber(code), cache = cache, etag = etag }
    end
    return list
  end

  local function tally(list, field)
    local t = {}
    for _, r in ipairs(list) do t[r[field]] = (t[r[field]] or 0) + 1 end
    return t
  end

  -- Waits (bounded) until the fake org has no API request in flight.
  local function settle()
    for _ = 1, 200 do
      if org:stats().inflight == 0 then return end
      nginx.run("sleep 0.05")
    end
    error("the fake org still has requests in flight")
  end

  local function wait_until(what, fn)
    for _ = 1, 200 do
      if fn() then return end
      nginx.run("sleep 0.05")
    end
    error("timed out waiting for " .. what .. "\n" .. srv:error_log())
  end

  it("500 concurrent requests for a cold report make exactly one run", function()
    config({ sync_delay = 1 })
    local list = parallel(500, "/cold/" .. R.tabular_small.id)
    assert.equal(500, #list)
    assert.same({ [200] = 500 }, tally(list, "code"))
    settle()
    local caches = tally(list, "cache")
    assert.equal(1, org:stats().sync_runs, fakeorg.encode(caches) .. fakeorg.encode(org:stats().by_path)
      .. srv:error_log():sub(-3000))
    assert.equal(1, caches.MISS)
    assert.equal(499, caches.HIT)
    local etags = {}
    for e in pairs(tally(list, "etag")) do etags[#etags + 1] = e end
    assert.equal(1, #etags)
    local status, _, h = srv:request("/cold/" .. R.tabular_small.id)
    assert.equal(200, status)
    assert.equal("HIT", h["x-cache"])
    assert.equal("false", h["x-report-truncated"])
    assert.equal(1, org:stats().sync_runs)
    assert.is_nil(srv:error_log():find("sfreports.serve:", 1, true), srv:error_log())
  end)

  it("answers If-None-Match with 304, and marks truncated reports", function()
    local status, body, h = srv:request("/cold/" .. R.tabular_small.id)
    assert.equal(200, status)
    assert.matches('^"%x+"$', h.etag)
    assert.equal("text/csv; charset=utf-8", h["content-type"])
    assert.equal(tostring(#body), h["content-length"])
    local s304 = srv:request("/cold/" .. R.tabular_small.id,
      { extra = "-H " .. shell_quote("If-None-Match: " .. h.etag) })
    assert.equal(304, s304)
    local s200 = srv:request("/cold/" .. R.tabular_small.id, { extra = "-H 'If-None-Match: \"other\"'" })
    assert.equal(200, s200)
    local _, _, h5k = srv:request("/cold/" .. R.tabular_5k.id)
    assert.equal("true", h5k["x-report-truncated"])
    local _, jbody, hj = srv:request("/json/" .. R.tabular_small.id)
    assert.equal("application/json", hj["content-type"])
    assert.equal(R.tabular_small.rows, #fakeorg.decode(jbody))
    assert.equal(3, org:stats().sync_runs)
  end)

  it("serves a stale entry at once while exactly one refresh runs", function()
    local _, _, first = srv:request("/short/" .. R.tabular_small.id)
    assert.equal("MISS", first["x-cache"])
    nginx.run("sleep 1.2") -- max_age = 1: the entry is stale now
    config({ sync_delay = 5 }) -- time for 200 curls to be answered while the refresh runs
    local list = parallel(200, "/short/" .. R.tabular_small.id)
    assert.same({ [200] = 200 }, tally(list, "code"))
    assert.same({ STALE = 200 }, tally(list, "cache"))
    -- every visitor had its answer while the refresh was still running at the org
    local stats = org:stats()
    assert.equal(1, stats.inflight)
    assert.equal(2, stats.sync_runs)
    settle()
    assert.equal(2, org:stats().sync_runs)
    local _, _, after = srv:request("/short/" .. R.tabular_small.id)
    assert.equal("HIT", after["x-cache"])
    assert.equal(first.etag, after.etag) -- the same data, so the same ETag
  end)

  it("a dead refresher's lock expires: refreshes and runs resume", function()
    srv:request("/short/" .. R.tabular_small.id)
    local _, held = srv:request("/lock?loc=short&ttl=5&id=" .. R.tabular_small.id)
    assert.equal("locked\n", held)
    nginx.run("sleep 1.2")
    local _, _, h = srv:request("/short/" .. R.tabular_small.id)
    assert.equal("STALE", h["x-cache"])
    settle()
    assert.equal(1, org:stats().sync_runs) -- the lock holds: no refresh
    wait_until("a refresh after the lock expired", function()
      srv:request("/short/" .. R.tabular_small.id)
      settle()
      return org:stats().sync_runs == 2
    end)
    -- a missing entry whose lock is held by a dead run: the waiting request takes over
    local _, locked = srv:request("/lock?loc=cold&ttl=1&id=" .. R.filtered.id)
    assert.equal("locked\n", locked)
    local status, _, hc = srv:request("/cold/" .. R.filtered.id)
    assert.equal(200, status)
    assert.equal("MISS", hc["x-cache"])
    assert.equal(3, org:stats().sync_runs)
  end)

  it("a bounded wait ends in 503 with Retry-After", function()
    local _, locked = srv:request("/lock?loc=busy&ttl=10&id=" .. R.tabular_small.id)
    assert.equal("locked\n", locked)
    local status, body, h = srv:request("/busy/" .. R.tabular_small.id)
    assert.equal(503, status, srv:error_log())
    assert.is_true(tonumber(h["retry-after"]) >= 1)
    assert.equal("busy", fakeorg.decode(body).error)
    assert.equal(0, org:stats().sync_runs)
  end)

  it("serves a body too large for the dict whole, without caching, and logs it", function()
    local status, body, h = srv:request("/tiny/" .. R.tabular_wide.id)
    assert.equal(200, status)
    assert.equal("BYPASS", h["x-cache"])
    assert.equal(tostring(#body), h["content-length"])
    local _, full = srv:request("/cold/" .. R.tabular_wide.id)
    assert.equal(full, body)
    assert.is_true(#body > 64 * 1024)
    assert.matches("does not fit in lua_shared_dict tiny", srv:error_log())
    local _, _, again = srv:request("/tiny/" .. R.tabular_wide.id)
    assert.equal("BYPASS", again["x-cache"])
    assert.equal(3, org:stats().sync_runs)
  end)

  it("takes query options only from the allow-list", function()
    local _, all, plain = srv:request("/allow/" .. R.tabular_small.id)
    assert.equal("MISS", plain["x-cache"])
    local status, some, h = srv:request("/allow/" .. R.tabular_small.id .. "?stage=Prospecting")
    assert.equal(200, status)
    assert.are_not.equal(plain.etag, h.etag)
    assert.is_true(#some < #all)
    assert.truthy(some:find("Prospecting", 1, true))
    assert.truthy(all:find("Closed Won", 1, true))
    assert.is_nil(some:find("Closed Won", 1, true))
    local bad, bbody = srv:request("/allow/" .. R.tabular_small.id .. "?stage=Evil")
    assert.equal(400, bad)
    assert.equal("unknown stage", fakeorg.decode(bbody).message)
    -- parameters outside the list change nothing: the plain entry answers
    local s2, _, h2 = srv:request("/allow/" .. R.tabular_small.id .. "?filters=AMOUNT&columns=x&nocache=123")
    assert.equal(200, s2)
    assert.equal("HIT", h2["x-cache"])
    assert.equal(plain.etag, h2.etag)
    assert.equal(2, org:stats().sync_runs)
  end)

  it("a failed run is a short 502; a stale copy is served when a refresh fails", function()
    assert.is_true(org:control("fault", { kind = "server_error", count = 20, path = R.filtered.id }).ok)
    local status, body = srv:request("/cold/" .. R.filtered.id)
    assert.equal(502, status)
    local e = fakeorg.decode(body)
    assert.equal("api", e.error)
    assert.is_nil(body:find(org.token, 1, true))
    assert.is_nil(body:find("traceback", 1, true))
    assert.is_true(#body < 200)
    srv:request("/short/" .. R.tabular_small.id)
    nginx.run("sleep 1.2")
    assert.is_true(org:control("fault", { kind = "server_error", count = 20, path = R.tabular_small.id }).ok)
    local s2, _, h2 = srv:request("/short/" .. R.tabular_small.id)
    assert.equal(200, s2)
    assert.equal("STALE", h2["x-cache"])
    wait_until("the refresh failure in the error log", function()
      return srv:error_log():find("background refresh of report " .. R.tabular_small.id, 1, true) ~= nil
    end)
    assert.is_nil(srv:error_log():find(org.token, 1, true))
    local s3, _, h3 = srv:request("/short/" .. R.tabular_small.id)
    assert.equal(200, s3)
    assert.equal("STALE", h3["x-cache"])
  end)

  it("serve.schedule warms an entry before any visitor comes", function()
    assert.equal("HIT", warm_cache) -- the first visitor found the entry the schedule made
    local status, body, h = srv:request("/warm/" .. R.summary_1.id)
    assert.equal(200, status)
    assert.equal("HIT", h["x-cache"])
    assert.is_true(#body > 0)
    assert.equal(0, org:stats().sync_runs) -- run by the schedule at start-up, before this test's reset
  end)

  it("async = true reuses a finished instance with the same metadata", function()
    config({ async_delay = 0 })
    local status = srv:request("/async/" .. R.tabular_small.id)
    assert.equal(200, status)
    assert.equal(1, org:stats().async_runs)
    srv:request("/purge?loc=async&id=" .. R.tabular_small.id)
    local s2, _, h2 = srv:request("/async/" .. R.tabular_small.id)
    assert.equal(200, s2)
    assert.equal("MISS", h2["x-cache"])
    assert.equal(1, org:stats().async_runs) -- the instance was read again, not run again
  end)
end)

describe("the cached endpoint of examples/nginx", function()
  local org, example

  setup(function()
    local root = nginx.root()
    nginx.build_luajit_core(root)
    org = fakeorg.start()
    local ok, err = pcall(function()
      example = nginx.start({ template = root .. "/examples/nginx/nginx.conf",
        env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token },
        vars = { SFREPORTS = root, CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt" } })
    end)
    if not ok then
      org:stop()
      error(err, 0)
    end
  end)
  teardown(function()
    if example then example:stop() end
    if org then nginx.stop_orgs({ org }) end
  end)

  it("runs the report once, serves it from the cache, and takes only ?stage", function()
    local path = "/cached/reports/" .. R.tabular_small.id
    local s1, b1, h1 = example:request(path .. ".csv")
    assert.equal(200, s1)
    assert.equal("MISS", h1["x-cache"])
    assert.equal("false", h1["x-report-truncated"])
    local s2, b2, h2 = example:request(path .. ".csv?filters=x&raw=1")
    assert.equal(200, s2)
    assert.equal("HIT", h2["x-cache"])
    assert.equal(b1, b2)
    assert.equal(1, org:stats().sync_runs)
    local s3, b3, h3 = example:request(path .. ".json?stage=Prospecting")
    assert.equal(200, s3)
    assert.equal("application/json", h3["content-type"])
    local rows = fakeorg.decode(b3)
    assert.is_true(#rows > 0 and #rows < R.tabular_small.rows)
    for _, row in ipairs(rows) do assert.equal("Prospecting", row.STAGE_NAME) end
    assert.equal(2, org:stats().sync_runs)
    assert.is_nil(example:error_log():find(org.token, 1, true))
  end)
end)
