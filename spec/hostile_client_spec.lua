-- The client (sfreports.new) against the hostile server, on both engines (issue 15):
-- an echoed Authorization header never reaches an error, bad JSON shapes are decode
-- errors (never a raise, never a "complete" report), a redirect says so, and a huge
-- server message full of control characters arrives as one short line.
local sfreports = require "sfreports"
local hostile = require "hostile"

local REPORT = "00OFk00000E0001MAB"
-- a token with the characters URL-encoding changes
local TOKEN = "00DFk0000001abc!AQ+s3cr3t=t0k3n/xyz@w"

describe("the client against a hostile server", function()
  local srv, runner

  setup(function()
    srv = hostile.start()
    runner = hostile.start_runner()
  end)
  teardown(function()
    if runner then runner:stop() end
    if srv then srv:stop() end
  end)

  local function options(extra)
    local o = { instance_url = srv.url, access_token = TOKEN, retries = 0, timeout = 20 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  -- One client call through each engine: { ok, raised, err = {kind, message, code, excerpt},
  -- complete }.
  local ENGINES = {
    libcurl = function(op, args, extra)
      local c = assert(sfreports.new(options(extra)))
      local ok, value, err = pcall(c[op], c, (table.unpack or unpack)(args))
      c:close()
      if not ok then return { ok = false, raised = tostring(value) } end
      local out = { ok = value ~= nil }
      if value == nil then
        out.err = { kind = err.kind, message = err.message, code = err.code, excerpt = err.excerpt,
          text = tostring(err) }
      else
        out.complete = type(value) == "table" and value.all_data
      end
      return out
    end,
    cosocket = function(op, args, extra)
      local answer = runner:run({ client = options(extra), calls = { { op = op, args = args } } })
      return answer.results[1]
    end,
  }

  local function texts(r)
    local out = {}
    for _, k in ipairs({ "message", "code", "excerpt", "text" }) do
      if r.err and r.err[k] ~= nil then out[#out + 1] = tostring(r.err[k]) end
    end
    return out
  end

  for _, engine in ipairs({ "libcurl", "cosocket" }) do
    describe("(" .. engine .. " engine)", function()
      it("never shows an Authorization header the server echoes, raw or URL-encoded", function()
        local id = hostile.new_id()
        srv:set_case("echo_error", id)
        local r = ENGINES[engine]("describe", { REPORT })
        assert.is_nil(r.raised)
        assert.is_false(r.ok)
        local seen = texts(r)
        assert.is_true(#seen >= 2)
        local joined = table.concat(seen, "\n")
        assert.matches("[secret]", joined, 1, true) -- the echo was there, masked
        for _, needle in ipairs({ "s3cr3t", "s3cr3t%3Dt0k3n", "AQ%2Bs3cr3t" }) do
          assert.is_nil(joined:find(needle, 1, true), needle .. " leaked: " .. joined)
        end
      end)

      for _, case in ipairs({ "shape_null", "shape_true", "shape_str", "shape_obj", "shape_arr", "shape_num" }) do
        it("run_sync of a " .. case .. " answer is a decode error", function()
          local id = hostile.new_id()
          srv:set_case(case, id)
          local r = ENGINES[engine]("run_sync", { REPORT })
          assert.is_nil(r.raised)
          assert.is_false(r.ok)
          assert.equal("decode", r.err.kind)
        end)
      end

      it("a token endpoint answer with CR/LF in the token is an auth error from new, not a raise", function()
        local id = hostile.new_id()
        srv:set_case("token_crlf", id)
        local o = { auth = { flow = "client_credentials", client_id = "cid-123456",
          client_secret = "csecret-123456", login_url = srv.url }, retries = 0 }
        local err
        if engine == "libcurl" then
          local ok, c, e = pcall(sfreports.new, o)
          assert.is_true(ok, tostring(c))
          assert.is_nil(c)
          err = e
        else
          local answer = runner:run({ client = o, calls = {} })
          err = answer.new_err
        end
        assert.equal("auth", err.kind)
        assert.matches("control characters", err.message)
        assert.equal(1, srv:seen(id).requests)
      end)

      it("a redirect is an error that says it was one", function()
        local id = hostile.new_id()
        srv:set_case("redirect", id)
        local r = ENGINES[engine]("describe", { REPORT })
        assert.is_false(r.ok)
        assert.matches("redirect", r.err.message)
      end)

      it("a 2 MB message with control characters arrives as one short line", function()
        local id = hostile.new_id()
        srv:set_case("big_error", id)
        local r = ENGINES[engine]("describe", { REPORT })
        assert.is_false(r.ok)
        for _, t in ipairs(texts(r)) do
          assert.is_nil(t:find("[%z\1-\31\127]"), "control character in: " .. t:sub(1, 80))
          assert.is_true(#t <= 700, #t)
        end
      end)
    end)
  end
end)
