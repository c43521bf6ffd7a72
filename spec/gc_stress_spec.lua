-- GC stress over real HTTP: thousands of requests, clients created and dropped, Lua
-- errors raised in the middle of requests (from a sleep hook, while transfers are in
-- flight, while building a request, in an abandoned coroutine), with collectgarbage in
-- between. Afterwards the Lua heap, the process's resident memory and its sockets are
-- where they were: nothing the C core allocates outlives its Lua object.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"

local R = fakeorg.reports

-- Valgrind makes every request ~30x slower: fewer rounds there (it checks leaks itself).
local VALGRIND = os.getenv("SFREPORTS_UNDER_VALGRIND") ~= nil
local SANITIZER = os.getenv("SFREPORTS_UNDER_SANITIZER") ~= nil
local SCALE = VALGRIND and 0.05 or 1
-- AddressSanitizer keeps freed memory in quarantine and valgrind has its own heap, so
-- resident memory says little under them; the Lua heap bound holds everywhere.
local RSS_SLACK_KB = (VALGRIND or SANITIZER) and 256 * 1024 or 6 * 1024
local HEAP_SLACK_KB = 256

local function rounds(n)
  return math.max(10, math.floor(n * SCALE))
end

local PID = (function()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end)()

local function rss_kb()
  local f = assert(io.open("/proc/self/statm"))
  local pages = tonumber(f:read("*l"):match("^%d+%s+(%d+)"))
  f:close()
  return pages * 4
end

local function sockets()
  local n = 0
  local p = io.popen("ls -l /proc/" .. PID .. "/fd")
  for l in p:lines() do
    if l:find("-> socket:", 1, true) or l:find("-> anon_inode:", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

local function full_gc()
  collectgarbage()
  collectgarbage()
end

-- Memory and sockets now, after a full collection.
local function snapshot()
  full_gc()
  return { heap = collectgarbage("count"), rss = rss_kb(), sockets = sockets() }
end

local function assert_flat(before, label)
  local after = snapshot()
  local msg = ("%s: heap %.0f -> %.0f KB, rss %d -> %d KB, sockets %d -> %d"):format(label,
    before.heap, after.heap, before.rss, after.rss, before.sockets, after.sockets)
  if os.getenv("SFREPORTS_GC_STRESS_VERBOSE") then io.stderr:write(msg, "\n") end
  assert.is_true(after.heap - before.heap < HEAP_SLACK_KB, msg)
  assert.is_true(after.rss - before.rss < RSS_SLACK_KB, msg)
  assert.equal(before.sockets, after.sockets, msg)
  return after
end

describe("gc stress", function()
  local org

  local function new_client(opts)
    local o = { instance_url = org.url, access_token = org.token }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(sfreports.new(o))
  end

  setup(function()
    org = fakeorg.start()
  end)

  teardown(function()
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
  end)

  it("thousands of requests on one client keep memory flat", function()
    local c = new_client()
    local function batch(n)
      for i = 1, n do
        if i % 4 == 0 then
          assert(c:run_sync(R.tabular_small.id)) -- ~40 rows with details: a real body
        else
          assert(c:list_reports())
        end
        if i % 250 == 0 then collectgarbage() end
      end
    end
    batch(rounds(300)) -- warm up: connection pool, caches, allocator arenas
    local before = snapshot()
    local n = rounds(3000)
    batch(n)
    assert_flat(before, "requests")
    assert.is_true(org:stats().requests >= n)
    assert.equal(0, c.transport:pending())
    c:close()
  end)

  it("clients created and dropped, closed or not, leave nothing behind", function()
    local function churn(n)
      for i = 1, n do
        local c = new_client()
        assert(c:list_reports())
        if i % 2 == 0 then c:close() end -- the others are left to the collector
        if i % 50 == 0 then collectgarbage() end
      end
    end
    churn(rounds(50))
    local before = snapshot()
    churn(rounds(500))
    assert_flat(before, "clients")
  end)

  it("a Lua error from the sleep hook in the middle of a retry leaks nothing", function()
    local hook_calls = 0
    local c = new_client({ retry_base = 0.01, sleep = function()
      hook_calls = hook_calls + 1
      error("sleep hook failed")
    end })
    local function fail(n)
      org:control("fault", { kind = "html502", count = n })
      for _ = 1, n do
        local ok, why = pcall(c.describe, c, R.tabular_small.id)
        assert.is_false(ok)
        assert.matches("sleep hook failed", tostring(why))
      end
      collectgarbage()
    end
    fail(rounds(20))
    local before = snapshot()
    local calls = hook_calls
    fail(rounds(300))
    assert.equal(calls + rounds(300), hook_calls)
    assert.equal(0, c.transport:pending())
    assert_flat(before, "sleep hook errors")
    c:close()
  end)

  it("errors while transfers are in flight, then the client dropped, leak nothing", function()
    local path = "/services/data/v60.0/analytics/reports"
    local function abandon(n)
      for i = 1, n do
        local c = new_client()
        local t = c.transport
        local ok, why = pcall(function()
          for _ = 1, 4 do t:start("GET", path) end
          t:perform(0)
          error("caller failed mid-request")
        end)
        assert.is_false(ok)
        assert.matches("mid%-request", why)
        if i % 3 == 0 then
          -- closing the session with requests in flight, then touching them, is safe
          c:close()
        end
        if i % 25 == 0 then collectgarbage() end
      end
    end
    abandon(rounds(25))
    local before = snapshot()
    abandon(rounds(400))
    assert_flat(before, "in-flight errors")
  end)

  it("handles of a closed session fail cleanly and free everything", function()
    local c = new_client()
    local t = c.transport
    local handles = {}
    for i = 1, 5 do handles[i] = t:start("GET", "/services/data/v60.0/analytics/reports") end
    assert.equal(5, t:pending())
    c:close()
    for _, h in ipairs(handles) do
      assert.is_false(h:done())
      assert.has_error(function() h:result() end,
        "sfreports: request has not finished (drive it with session:perform)")
      h:close()
      h:close()
    end
    assert.has_error(function() t:perform(0) end, "sfreports: session is closed")
    assert.has_error(function() t:pending() end, "sfreports: session is closed")
    c:close()
  end)

  it("errors while building a request leak nothing", function()
    local c = new_client()
    local t = c.transport
    local function misuse(n)
      for _ = 1, n do
        assert.has_error(function() t:request("GET", "/x", nil, { ["X-A"] = {} }) end)
        assert.has_error(function() t:request("GET", "/x", nil, { ["X-A"] = "a\r\nb: c" }) end)
        assert.has_error(function() t:request("GET", "/a/../b") end)
        assert.has_error(function() t:request("BREW", "/x") end)
        assert.has_error(function() t:start("GET", "no-slash") end)
      end
      collectgarbage()
    end
    misuse(rounds(100))
    local before = snapshot()
    misuse(rounds(2000))
    assert_flat(before, "build errors")
    assert.equal(0, t:stats().requests)
    c:close()
  end)

  it("coroutines abandoned while waiting on an instance leak nothing", function()
    org:control("config", { async_delay = 30 })
    local c = new_client()
    local function abandon(n)
      for _ = 1, n do
        local co = coroutine.create(function()
          local inst = assert(c:run_async(R.tabular_small.id))
          return inst:wait({ yield = true, timeout = 60 })
        end)
        local ok, req = coroutine.resume(co)
        assert.is_true(ok, tostring(req))
        assert.equal("sleep", req.sfreports)
        -- never resumed again: the coroutine and its instance are dropped
      end
      collectgarbage()
    end
    abandon(rounds(20))
    local before = snapshot()
    abandon(rounds(200))
    assert_flat(before, "abandoned coroutines")
    assert.equal(0, c.transport:pending())
    c:close()
  end)
end)
