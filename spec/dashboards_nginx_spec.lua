-- luacheck: std +busted
-- Dashboards inside a real nginx (one worker): refresh + wait over cosockets with
-- ngx.sleep, several dashboards waiting at once without blocking the worker (proved by
-- the order in which the fake org saw their requests), "already in progress" between two
-- nginx requests, and filters resolved by label through a describe made over cosockets.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local nginx = require "nginx"

local encode, decode = fakeorg.encode, fakeorg.decode
local shell_quote = fakeorg.shell_quote

local SALES = "01ZFk00000G0001MAB"
local TEAMS = { "01ZFk00000G0101MAB", "01ZFk00000G0102MAB", "01ZFk00000G0103MAB", "01ZFk00000G0104MAB" }

-- The locations of the spec's nginx (nginx.start_sfreports runs sfreports in it).
local SERVER = [[
        location = /dash/refresh { content_by_lua_block { require("dash_probe").refresh() } }
        location = /dash/show { content_by_lua_block { require("dash_probe").show() } }
        location / { return 404; }
]]

describe("dashboards inside nginx", function()
  local org, srv, client

  local function stop_all()
    if client then client:close() end
    if srv then srv:stop() end
    if org then nginx.stop_orgs({ org }) end
  end

  setup(nginx.guarded(function()
    org = fakeorg.start()
    srv = nginx.start_sfreports({ org = org, server = SERVER })
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token }))
  end, stop_all))
  teardown(stop_all)
  before_each(function() org:reset() end)

  -- Runs the paths at once (shell background jobs) and returns the decoded answers.
  local function parallel(paths)
    local script = {}
    for i, p in ipairs(paths) do
      script[#script + 1] = ("( curl -s --max-time 60 -o %s %s ) &"):format(shell_quote(srv.dir .. "/answer" .. i),
        shell_quote(srv.url .. p))
    end
    script[#script + 1] = "wait"
    nginx.run(table.concat(script, "\n"))
    local out = {}
    for i = 1, #paths do
      local body = fakeorg.read_file(srv.dir .. "/answer" .. i) or ""
      local ok, v = pcall(decode, body)
      assert.is_true(ok, body .. srv:error_log())
      out[i] = v
    end
    return out
  end

  local function log_of(id)
    local out = {}
    for _, e in ipairs(org:stats().dashboard_log) do
      if id == nil or e.id == id then out[#out + 1] = e end
    end
    return out
  end

  it("waits on several dashboards at once in one worker without blocking it", function()
    -- every refresh runs until the org has had all four PUTs (and a second after): the
    -- spec proves overlap by the order of requests, not by how fast curl starts
    org:control("config", { dashboard_refresh_delay = 1.0, dashboard_refresh_gate = #TEAMS })
    local paths = {}
    for i, id in ipairs(TEAMS) do paths[i] = "/dash/refresh?id=" .. id end
    local answers = parallel(paths)
    local last_put, first_results = 0, math.huge
    for i = 1, #TEAMS do
      local log = log_of(TEAMS[i])
      assert.equal("refresh", log[1].what)
      assert.equal("results", log[#log].what)
      if log[1].n > last_put then last_put = log[1].n end
      if log[#log].n < first_results then first_results = log[#log].n end
    end
    -- every refresh was started before any of them was read: the four waits overlapped in
    -- the one worker (a blocking wait would have finished one before the next PUT)
    assert.is_true(last_put < first_results, ("last PUT #%d, first results #%d"):format(last_put, first_results))
    for i, a in ipairs(answers) do
      assert.is_true(a.ok, encode(a))
      assert.equal("ngx", a.engine)
      assert.is_true(a.polls >= 2)
      assert.equal(2, #a.components)
      assert.equal(fakeorg.reports.summary_1.rows, a.components[1].total)
      -- each dashboard: its PUT, polls while RUNNING, the last one IDLE, then its results
      local log = log_of(TEAMS[i])
      assert.is_true(log[2].running)
      assert.equal(a.polls, #log - 2)
      assert.is_false(log[#log - 1].running)
    end
    -- and their polls interleaved: between the first and the last results, another
    -- dashboard's status poll came in
    local ids_between = {}
    for _, e in ipairs(log_of()) do
      if e.what == "status" and e.n > last_put and e.n < first_results then ids_between[e.id] = true end
    end
    local n = 0
    for _ in pairs(ids_between) do n = n + 1 end
    assert.is_true(n >= 2, "status polls of one dashboard only")
  end)

  it("makes a second nginx request wait on the refresh already in progress", function()
    -- the first refresh runs until the second PUT has met it, however late that comes
    org:control("config", { dashboard_refresh_delay = 0.8, dashboard_refresh_gate = 2 })
    local path = "/dash/refresh?id=" .. SALES .. "&region=EMEA"
    local answers = parallel({ path, path })
    local running = 0
    for _, a in ipairs(answers) do
      assert.is_true(a.ok, encode(a))
      if a.already_running then running = running + 1 end
      assert.equal(4, #a.components)
      assert.equal("api", a.components[4].error.kind)
      assert.equal("302", a.components[4].error.code)
    end
    assert.equal(1, running)
    local puts = 0
    for _, e in ipairs(log_of(SALES)) do
      if e.what == "refresh" then
        puts = puts + 1
        assert.equal("filter1=0ICFk00000I0001OAB", e.args)
      end
    end
    assert.equal(2, puts)
  end)

  it("resolves filters by label over cosockets and reads the same components as plain Lua", function()
    local status, body = srv:request("/dash/show?id=" .. SALES .. "&region=Americas")
    assert.equal(200, status, body)
    local a = decode(body)
    assert.is_true(a.ok, body)
    assert.equal("0ICFk00000I0002OAB", a.selected.filter1)
    local d = assert(client:dashboard(SALES, { filters = { Region = "Americas" } }))
    for i, c in ipairs(d.components) do
      assert.equal(c.id, a.components[i].id)
      if c.report then
        assert.equal(c.report:row_count(), a.components[i].rows)
        assert.equal(c.report:total("RowCount").value, a.components[i].total)
      end
    end
    status, body = srv:request("/dash/show?id=" .. SALES .. "&region=Atlantis")
    assert.equal(200, status)
    a = decode(body)
    assert.is_false(a.ok)
    assert.equal("invalid", a.err.kind)
    assert.truthy(a.err.message:find('"EMEA", "Americas", "APAC"', 1, true))
  end)
end)
