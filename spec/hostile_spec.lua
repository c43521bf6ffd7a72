-- Both engines (the libcurl session, and cosockets inside a real nginx) against a
-- hostile server of our own (spec/support/hostile.lua): endless lines, oversized header
-- blocks, broken chunking, trickled bodies, stalls, gzip bombs. Every case must end in
-- nil, err: never a raise, never a hang, never a value. Memory is proven bounded by what
-- the server saw (the client left before an endless response ended), time by the error
-- kind and the server's view of the close; no wall-clock bounds.
local core = require "sfreports.core"
local sfreports = require "sfreports"
local hostile = require "hostile"
local nginx = require "nginx"

local GiB = 1024 * 1024 * 1024

describe("a hostile server", function()
  local srv, runner

  local function stop_all()
    if srv then srv:stop() end
    if runner then runner:stop() end
    srv, runner = nil, nil
  end

  setup(nginx.guarded(function()
    srv = hostile.start()
    runner = hostile.start_runner()
  end, stop_all))
  teardown(stop_all)

  local function merged(base, extra)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  -- One GET through each engine: { ok, raised, err = { kind, message, ... } }.
  local ENGINES = {
    libcurl = function(path, opts)
      local s = core.session(merged({ base_url = srv.url, timeout = 30 }, opts))
      local ok, value, err = pcall(s.request, s, "GET", path)
      s:close()
      if not ok then return { ok = false, raised = tostring(value) } end
      return { ok = value ~= nil, err = value == nil and err or nil }
    end,
    cosocket = function(path, opts)
      local answer = runner:run({ transport = merged({ base_url = srv.url, timeout = 30 }, opts),
        calls = { { op = "request", args = { "GET", path } } } })
      return answer.results[1]
    end,
  }
  local ENGINE_NAMES = { "libcurl", "cosocket" }

  local function assert_error(r, kind, message)
    assert.is_nil(r.raised, "raised: " .. tostring(r.raised))
    assert.is_false(r.ok, "a hostile answer was accepted")
    assert.is_table(r.err)
    if type(kind) == "table" then
      assert.is_truthy(kind[r.err.kind], "kind " .. tostring(r.err.kind) .. ": " .. tostring(r.err.message))
    else
      assert.equal(kind, r.err.kind, r.err.message)
    end
    if message then assert.matches(message, r.err.message, 1, true) end
  end

  local BAD_RESPONSE = { network = true, http = true }

  -- Endless answers: the client must give up on its own bound and close, long before
  -- the server has written its 1 GB (kernel buffers hold a few MB of it at most).
  -- message: what the cosocket engine says (the libcurl one words it its own way).
  local ENDLESS = {
    { case = "endless_status", message = "response status line longer than 102400 bytes" },
    { case = "endless_interim", message = "response header block larger than 262144 bytes" },
    { case = "endless_header", message = "response header line longer than 102400 bytes" },
    { case = "many_headers", message = "response header block larger than 262144 bytes" },
    { case = "endless_chunk_size", message = "chunk size line longer than 4096 bytes" },
    { case = "endless_trailer", message = "response trailer line longer than 102400 bytes" },
    { case = "many_trailers", message = "response trailer block larger than 262144 bytes" },
  }

  for _, engine in ipairs(ENGINE_NAMES) do
    describe("through the " .. engine .. " engine", function()
      local request = function(...) return ENGINES[engine](...) end

      for _, c in ipairs(ENDLESS) do
        it("gives up on an endless response (" .. c.case .. ") within its bounds", function()
          local id = hostile.new_id()
          local r = request(srv:path(c.case, id, { cap = GiB }))
          assert_error(r, BAD_RESPONSE, engine == "cosocket" and c.message or nil)
          local seen = srv:wait_seen(id, function(s) return s.closed or s.finished end)
          assert.is_true(seen.closed, "the client did not leave before the server's 1 GB")
          assert.is_false(seen.finished)
          assert.is_true(seen.sent < 64 * 1024 * 1024, "the client took " .. seen.sent .. " bytes")
        end)
      end

      for _, c in ipairs({
        { case = "bad_chunk_size", kind = BAD_RESPONSE, message = "malformed chunk size" },
        { case = "bad_content_length", kind = BAD_RESPONSE },
        { case = "short_body", kind = "network" },
        { case = "redirect", kind = "http" },
        { case = "big_error", kind = "api" },
      }) do
        it("answers a " .. c.case .. " response with nil, err", function()
          local r = request(srv:path(c.case, hostile.new_id()))
          assert_error(r, c.kind, engine == "cosocket" and c.message or nil)
        end)
      end

      it("stops a gzip bomb at max_response", function()
        for _, case in ipairs({ "gzip_bomb", "gzip_bomb_chunked" }) do
          local id = hostile.new_id()
          local r = request(srv:path(case, id), { max_response = 1024 * 1024 })
          assert_error(r, "limit")
          -- the compressed body was within the limit: the cap applied to what it inflates to
          assert.is_true(srv:seen(id).sent < 1024 * 1024)
        end
      end)

      it("times out a body trickled one byte a second: timeout bounds the whole request", function()
        for _, case in ipairs({ "trickle_body", "trickle_head" }) do
          local id = hostile.new_id()
          -- every byte comes well within stall_timeout; only a total deadline can end it
          local r = request(srv:path(case, id, { bytes = 200, interval = 0.5 }), { timeout = 2, stall_timeout = 5 })
          assert_error(r, "timeout")
          local seen = srv:wait_seen(id, function(s) return s.closed or s.finished end)
          assert.is_true(seen.closed, case .. ": the client did not leave before the trickle ended")
          assert.is_false(seen.finished)
        end
      end)

      it("gives up on a silent server after stall_timeout", function()
        for _, case in ipairs({ "stall", "silent" }) do
          local id = hostile.new_id()
          local r = request(srv:path(case, id, { pause = 30 }), { timeout = 20, stall_timeout = 1 })
          assert_error(r, "timeout", "no data received for 1 seconds (stall_timeout)")
          local seen = srv:wait_seen(id, function(s) return s.closed or s.finished end)
          assert.is_true(seen.closed)
          assert.is_false(seen.finished)
        end
      end)

      it("fails through the client as nil, err too", function()
        local id = hostile.new_id()
        srv:set_case("endless_header", id, { cap = GiB })
        local opts = { instance_url = srv.url, access_token = "tok", retries = 0 }
        local r
        if engine == "cosocket" then
          r = runner:run({ client = opts, calls = { { op = "run_sync", args = { "00OFk00000A0001MAB" } } } }).results[1]
        else
          local client = assert(sfreports.new(opts))
          local ok, value, err = pcall(client.run_sync, client, "00OFk00000A0001MAB")
          client:close()
          r = ok and { ok = value ~= nil, err = value == nil and err or nil } or { raised = value }
        end
        assert_error(r, BAD_RESPONSE)
        assert.is_true(srv:wait_seen(id, function(s) return s.closed or s.finished end).closed)
      end)
    end)
  end

  -- stall_timeout must fire within 10% of its value: the server pauses 10% longer than
  -- the client's stall_timeout and then answers; a client that noticed the stall late
  -- would have received the answer. (The libcurl engine polls in slices of 1/20 of the
  -- stall limit; before, it noticed a stall up to a second late.)
  for _, engine in ipairs({ "libcurl", "cosocket" }) do
    it("notices a stall within 10% of stall_timeout (" .. engine .. " engine)", function()
      local id = hostile.new_id()
      local r = ENGINES[engine](srv:path("stall", id, { pause = 1.65 }), { timeout = 20, stall_timeout = 1.5 })
      assert_error(r, "timeout", "(stall_timeout)")
      assert.is_false(srv:wait_seen(id, function(s) return s.closed or s.finished end).finished)
    end)
  end

  -- Inflating a bomb all at once into a growing buffer peaked at 2.5-3.5x the cap; inflated
  -- as it arrives, the worker holds about the cap. Measured in the nginx worker (VmHWM
  -- reset just before), which no sanitizer inflates.
  it("keeps a gzip bomb's memory near max_response (cosocket engine)", function()
    local cap = 16 * 1024 * 1024
    for _, case in ipairs({ "gzip_bomb", "gzip_bomb_chunked" }) do
      local answer = runner:run({ reset_peak = true, transport = { base_url = srv.url, max_response = cap },
        calls = { { op = "request", args = { "GET", srv:path(case, hostile.new_id()) } } } })
      assert_error(answer.results[1], "limit")
      local added_kb = answer.after.hwm - answer.before.rss
      assert.is_true(added_kb * 1024 < 1.5 * cap, case .. " peaked " .. added_kb .. " kB above the start")
    end
  end)

  describe("the server itself", function()
    it("records what each id saw: requests, the request head, bytes sent", function()
      local id = hostile.new_id()
      local s = core.session({ base_url = srv.url, user_agent = "hostile-spec/1" })
      local value = assert(s:request("GET", srv:path("echo", id)))
      s:close()
      assert.matches("User-Agent: hostile-spec/1", value.head, 1, true)
      local seen = srv:seen(id)
      assert.equal(1, seen.requests)
      assert.equal("echo", seen.case)
      assert.equal(value.head, seen.head)
      assert.is_true(seen.sent > #value.head)
      assert.is_true(seen.finished)
      assert.is_false(seen.closed)
    end)

    it("plays the case set for paths a client builds itself", function()
      local id = hostile.new_id()
      srv:set_case("shape_null", id)
      local s = core.session({ base_url = srv.url })
      local value = s:request("GET", "/services/data/v67.0/analytics/reports")
      s:close()
      assert.equal(core.null, value)
      assert.equal(1, srv:seen(id).requests)
    end)
  end)
end)

describe("core.inflater", function()
  local function gzip_of(text)
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "wb"))
    f:write(text)
    f:close()
    local p = assert(io.popen("gzip -c < '" .. tmp .. "'", "r"))
    local gz = p:read("*a")
    p:close()
    os.remove(tmp)
    return gz
  end

  local plain = {}
  for i = 1, 20000 do plain[i] = ("row %d: %s"):format(i, ("x"):rep(i % 37)) end
  plain = table.concat(plain, "\n")
  local gz = gzip_of(plain)

  it("inflates a stream fed in pieces of any size, as core.gunzip does at once", function()
    assert.equal(plain, core.gunzip(gz))
    for _, step in ipairs({ 1, 3, 1000, 65536, #gz }) do
      local z, parts = core.inflater(), {}
      for i = 1, #gz, step do assert(z:feed(gz:sub(i, i + step - 1), parts)) end
      assert.equal(#plain, z:finish())
      assert.equal(plain, table.concat(parts))
      z:close()
    end
  end)

  it("stops as soon as the output passes max_bytes, holding no more than that", function()
    local z, parts = core.inflater(100000), {}
    local n, err = z:feed(gz, parts)
    assert.is_nil(n)
    assert.equal("limit", err.kind)
    local held = #table.concat(parts)
    assert.is_true(held <= 100000, held)
    assert.is_true(held > 100000 - 32768, held)
    -- the error sticks: feeding more changes nothing
    n, err = z:feed("more", parts)
    assert.is_nil(n)
    assert.equal("limit", err.kind)
  end)

  it("reports a corrupt or truncated stream as a decode error, and raises on misuse", function()
    local z = core.inflater()
    local n, err = z:feed("this is not gzip at all", {})
    assert.is_nil(n)
    assert.equal("decode", err.kind)
    assert.matches("corrupt", err.message)
    z = core.inflater()
    assert(z:feed(gz:sub(1, 100), {}))
    n, err = z:finish()
    assert.is_nil(n)
    assert.matches("truncated", err.message)
    z:close()
    z:close()
    assert.has_error(function() z:feed("x", {}) end, "sfreports: the inflater is closed")
    assert.has_error(function() core.inflater(0 / 0) end)
    assert.has_error(function() core.inflater():feed("x") end)
  end)
end)
