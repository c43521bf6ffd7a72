-- Every fault of issue 10 against the fake org, over real HTTP through the C engine:
-- each must give the right error kind, with nothing left behind (no request in flight in
-- the session, no file descriptor left open once the client is closed), and partial data
-- must never come back as a result. No upper time bound (they break under load and the
-- sanitizers): what the org saw (requests, polls, a stall still in progress) and
-- the waits asked of the client's sleep hook prove the promptness claims; the lower
-- bounds that remain (a timeout does not fire early) cannot break by running slowly.
local sfreports = require "sfreports"
local core = require "sfreports.core"
local retry = require "sfreports.retry"
local fakeorg = require "fakeorg"

local R = fakeorg.reports
local monotime = core.monotime

local PID = (function()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end)()

-- Sockets and event descriptors of this process: what a leaked curl handle, multi
-- handle or connection would hold open. (Pipes are left out: io.popen pipes of other
-- code in the same busted run close whenever their file object is collected.)
local function fd_count()
  local n = 0
  local p = io.popen("ls -l /proc/" .. PID .. "/fd")
  for l in p:lines() do
    if l:find("-> socket:", 1, true) or l:find("-> anon_inode:", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

local function timed(fn)
  local t0 = monotime()
  local a, b = fn()
  return a, b, monotime() - t0
end

describe("faults", function()
  local org, fds_before

  local function new_client(opts)
    local o = { instance_url = org.url, access_token = org.token }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(sfreports.new(o))
  end

  -- Nothing in flight, and once closed and collected, every descriptor is back.
  local function assert_released(client)
    assert.equal(0, client.transport:pending())
    client:close()
    collectgarbage()
    collectgarbage()
    assert.equal(fds_before, fd_count())
  end

  local function requests()
    return org:stats().requests
  end

  -- A sleep hook for the client (option `sleep`) that records each wait it is asked for.
  local function recorded_sleep()
    local slept = {}
    return slept, function(seconds)
      slept[#slept + 1] = seconds
      core.sleep(seconds)
    end
  end

  -- The org still holds the stalled request: the client gave up before the stall ended.
  local function still_stalling()
    assert.is_true(org:stats().inflight >= 1, "the client waited for the stall to end")
  end

  setup(function()
    org = fakeorg.start()
  end)

  teardown(function()
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
    collectgarbage()
    fds_before = fd_count()
  end)

  describe("connection refused", function()
    it("is a network error that never reached the server, fast", function()
      local c = new_client({ instance_url = "http://127.0.0.1:1", retries = 0 })
      local r, err = c:describe(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal("network", err.kind)
      assert.is_false(err.request_sent)
      assert.is_true(err.retryable)
      assert.is_nil(err.attempts)
      assert_released(c)
    end)

    it("is retried with backoff, for a POST too (it provably never arrived)", function()
      local slept, sleep = recorded_sleep()
      local c = new_client({ instance_url = "http://127.0.0.1:1", retries = 2, retry_base = 0.2, sleep = sleep })
      local r, err = c:run_async(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal("network", err.kind)
      assert.equal(3, err.attempts)
      -- backoff waits: 0.1-0.2 s, then 0.2-0.4 s
      assert.equal(2, #slept)
      assert.is_true(slept[1] >= 0.1 and slept[1] <= 0.2, slept[1])
      assert.is_true(slept[2] >= 0.2 and slept[2] <= 0.4, slept[2])
      assert_released(c)
    end)
  end)

  describe("reset in the middle of a body", function()
    it("is a network error, never a partial result", function()
      org:control("fault", { kind = "reset", count = 1 })
      local c = new_client({ retries = 0 })
      local r, err = c:describe(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal("network", err.kind)
      assert.is_true(err.request_sent)
      assert.equal(1, requests())
      assert_released(c)
    end)

    it("is retried for a GET, which then succeeds", function()
      org:control("fault", { kind = "reset", count = 1 })
      local c = new_client({ retry_base = 0.05 })
      local report = assert(c:run_sync(R.tabular_small.id, { details = false }))
      assert.equal("TABULAR", report.format)
      assert.equal(2, requests())
      assert_released(c)
    end)

    it("is not retried for a POST that starts a run (it did reach the server)", function()
      org:control("fault", { kind = "reset", count = 1 })
      local c = new_client({ retry_base = 0.05 })
      local inst, err = c:run_async(R.tabular_small.id)
      assert.is_nil(inst)
      assert.equal("network", err.kind)
      assert.is_true(err.request_sent)
      assert.equal(1, requests())
      assert_released(c)
    end)
  end)

  it("a truncated gzip stream is a decode error, never a partial result", function()
    org:control("fault", { kind = "truncated_gzip", count = 1 })
    local c = new_client()
    local r, err = c:describe(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("decode", err.kind)
    assert.equal(1, requests()) -- a decode error is not retried
    assert_released(c)
  end)

  it("an HTML 502 page is an http error with a tag-free excerpt", function()
    org:control("fault", { kind = "html502", count = 1 })
    local c = new_client({ retries = 0 })
    local r, err = c:describe(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("http", err.kind)
    assert.equal(502, err.status)
    assert.matches("Bad Gateway", err.excerpt)
    assert.is_nil(err.message:find("<", 1, true))
    assert_released(c)
  end)

  it("an HTML 502 page is retried for a GET", function()
    org:control("fault", { kind = "html502", count = 2 })
    local c = new_client({ retry_base = 0.05 })
    assert(c:describe(R.tabular_small.id))
    assert.equal(3, requests())
    assert_released(c)
  end)

  it("invalid JSON in a 200 is a decode error, not retried", function()
    org:control("fault", { kind = "invalid_json", count = 1 })
    local c = new_client({ retry_base = 0.05 })
    local r, err = c:run_sync(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("decode", err.kind)
    assert.matches("not valid JSON", err.message)
    assert.equal(1, requests())
    assert_released(c)
  end)

  it("an empty 200 is a decode error, not an empty report", function()
    org:control("fault", { kind = "empty200", count = 1 })
    local c = new_client({ retries = 0 })
    local r, err = c:run_sync(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("decode", err.kind)
    assert.equal(200, err.status)
    assert_released(c)
  end)

  describe("503 with Retry-After", function()
    it("is waited out as asked, then succeeds", function()
      org:control("fault", { kind = "retry_after", count = 1 })
      -- a tiny base: only the honoured Retry-After (1 s) can make the wait long
      local slept, sleep = recorded_sleep()
      local c = new_client({ retry_base = 0.01, sleep = sleep })
      local d = c:describe(R.tabular_small.id)
      assert.is_table(d)
      assert.is_table(d.reportMetadata)
      assert.equal(2, requests())
      assert.equal(1, #slept)
      assert.is_true(slept[1] >= 0.95 and slept[1] <= 1.05, slept[1])
      assert_released(c)
    end)

    it("carries retry_after when retries are off", function()
      org:control("fault", { kind = "retry_after", count = 1 })
      local c = new_client({ retries = 0 })
      local r, err = c:describe(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal(503, err.status)
      assert.equal(1, err.retry_after)
      assert.is_true(err.retryable)
      assert_released(c)
    end)

    it("is handed back at once when the server asks for more than the cap", function()
      org:control("fault", { kind = "retry_after", count = 1 })
      local slept, sleep = recorded_sleep()
      local c = new_client({ sleep = sleep })
      local cap = retry.MAX_RETRY_AFTER
      retry.MAX_RETRY_AFTER = 0.5
      local r, err = c:describe(R.tabular_small.id)
      retry.MAX_RETRY_AFTER = cap
      assert.is_nil(r)
      assert.equal(1, err.retry_after)
      assert.equal(1, requests())
      assert.equal(0, #slept) -- not waited for at all
      assert_released(c)
    end)

    it("is not retried for a POST that starts a run", function()
      org:control("fault", { kind = "retry_after", count = 1 })
      local c = new_client({ retry_base = 0.01 })
      local r, err = c:run_async(R.tabular_small.id)
      assert.is_nil(r)
      assert.equal(503, err.status)
      assert.equal(1, requests())
      assert_released(c)
    end)
  end)

  describe("a body that stalls", function()
    it("past the stall timeout is a timeout error within that bound", function()
      org:control("fault", { kind = "stall", count = 1, seconds = 6 })
      local c = new_client({ stall_timeout = 1, timeout = 20, retries = 0 })
      local r, err, dt = timed(function() return c:describe(R.tabular_small.id) end)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.is_true(dt >= 0.9, dt)
      still_stalling()
      assert_released(c)
    end)

    it("past the total timeout is a timeout error within that bound", function()
      org:control("fault", { kind = "stall", count = 1, seconds = 6 })
      local c = new_client({ timeout = 0.7, retries = 0 })
      local r, err, dt = timed(function() return c:describe(R.tabular_small.id) end)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.is_true(dt >= 0.6, dt)
      still_stalling()
      assert_released(c)
    end)

    it("is retried for a GET, which then succeeds", function()
      org:control("fault", { kind = "stall", count = 1, seconds = 6 })
      -- the stall ends the first try; the retry happens within the call's timeout
      local c = new_client({ stall_timeout = 0.5, timeout = 20, retry_base = 0.05 })
      assert(c:describe(R.tabular_small.id))
      assert.equal(2, requests())
      assert_released(c)
    end)
  end)

  it("a response larger than max_response is a limit error, cut off early", function()
    org:control("fault", { kind = "huge", count = 1, bytes = 20 * 1024 * 1024 })
    local c = new_client({ max_response = 100000 })
    local r, err = c:run_sync(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("limit", err.kind)
    assert.is_false(err.retryable)
    assert.matches("max_response", err.message)
    assert.equal(1, requests())
    assert_released(c)
  end)

  it("REQUEST_LIMIT_EXCEEDED is a limit error, returned at once", function()
    org:control("fault", { kind = "limit", count = 1 })
    local c = new_client({ retry_base = 0.05 })
    local r, err = c:describe(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("limit", err.kind)
    assert.equal("REQUEST_LIMIT_EXCEEDED", err.code)
    assert.equal(403, err.status)
    assert.equal(1, requests())
    assert_released(c)
  end)

  it("a 500 is an api error, not retried", function()
    org:control("fault", { kind = "server_error", count = 1 })
    local c = new_client({ retry_base = 0.05 })
    local r, err = c:describe(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("api", err.kind)
    assert.equal("UNKNOWN_EXCEPTION", err.code)
    assert.equal(1, requests())
    assert_released(c)
  end)

  describe("asynchronous instances", function()
    it("one that never leaves Running ends in a timeout error naming it, on time", function()
      org:control("config", { async_delay = 0 })
      local c = new_client()
      local inst = assert(c:run_async(R.never_done.id))
      local r, err, dt = timed(function() return inst:wait({ timeout = 1, poll_interval = 0.1 }) end)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.equal(inst.id, err.instance_id)
      assert.equal("Running", inst.status)
      assert.is_true(dt >= 0.95, dt)
      assert.is_true(org:stats().instance_polls[inst.id] >= 2) -- it kept polling until the deadline
      assert_released(c)
    end)

    it("one in Error is an api error INSTANCE_ERROR", function()
      org:control("config", { async_delay = 0 })
      local c = new_client()
      local inst = assert(c:run_async(R.async_error.id))
      local r, err = inst:wait({ timeout = 5, poll_interval = 0.05 })
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal("INSTANCE_ERROR", err.code)
      assert.equal(inst.id, err.instance_id)
      assert.is_false(err.retryable)
      assert.equal(1, org:stats().instance_polls[inst.id]) -- the first answer ended the wait
      assert_released(c)
    end)
  end)
end)

describe("a TLS certificate that does not verify", function()
  local org

  setup(function()
    org = fakeorg.start({ tls = true })
  end)

  teardown(function()
    if org then org:stop() end
  end)

  it("is refused, not retried, and accepted once its CA file is given", function()
    org:reset()
    local fds = fd_count()
    local c = assert(sfreports.new({ instance_url = org.url, access_token = org.token, retry_base = 0.2 }))
    local r, err = c:describe(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("network", err.kind)
    assert.is_false(err.retryable)
    assert.is_false(err.request_sent)
    assert.is_nil(err.attempts)
    assert.equal(0, org:stats().requests)
    assert.equal(0, c.transport:pending())
    c:close()

    local ok = assert(sfreports.new({ instance_url = org.url, access_token = org.token, cafile = org.cafile }))
    assert(ok:describe(R.tabular_small.id))
    assert.equal(1, org:stats().requests)
    ok:close()
    collectgarbage()
    collectgarbage()
    assert.equal(fds, fd_count())
  end)
end)
