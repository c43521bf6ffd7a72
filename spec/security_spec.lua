-- Security properties, over real HTTP against the fake org: TLS verification on by
-- default, plain http only to loopback, no input able to change the request path or
-- add a header, no secret in any error or output, responses capped in size.
local sfreports = require "sfreports"
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local F = require "sfreports.filters"
local fakeorg = require "fakeorg"

local R = fakeorg.reports
local TOKEN = fakeorg.TOKEN

-- Every error any test here produces; the last test checks none holds a secret.
local produced = {}
local function keep(err)
  if err ~= nil then produced[#produced + 1] = err end
  return err
end

-- Strings a hostile caller (or a hostile response) could put where an id goes.
local HOSTILE_IDS = {
  "../../../sobjects/Account", "00OFk00000A0001MAB/../../x", "00OFk00000A0001MAB/describe",
  "00OFk00000A0001MAB?x=1", "00OFk00000A0001MAB#frag", "00OFk00000A0001MAB%2F..%2F..",
  "..", ".", "", "00OFk00000A0001MA\n", "00OFk00000A0001MAB ", "00OFk00000A0001\0AB",
  "00OFk00000A0001MAB\r\nX-Evil: 1", "00OFk00000A0001MAB\\..\\x", "ÀÀÀÀÀÀÀÀÀ",
  "http://evil.example/x", "//evil.example/x",
}

describe("security", function()
  local org, client

  setup(function()
    org = fakeorg.start()
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
    if client then client:close() end
    client = assert(sfreports.new({ instance_url = org.url, access_token = org.token, retries = 0 }))
  end)

  describe("instance_url", function()
    it("accepts https anywhere and plain http only on loopback", function()
      for _, url in ipairs({ "https://x.my.salesforce.com", "http://127.0.0.1:8080", "http://localhost",
        "http://[::1]:9000", "http://127.1.2.3" }) do
        assert.is_string(require("sfreports.client").check_instance_url(url), url)
      end
      for _, url in ipairs({ "http://x.my.salesforce.com", "http://127.0.0.1.evil.example",
        "http://localhost.evil.example", "http://evil.example#@127.0.0.1", "http://127.0.0.1@evil.example",
        "http://127.0.0.1:80@evil.example", "ftp://127.0.0.1", "file:///etc/passwd",
        "https://x.my.salesforce.com/path", "https://user:pw@x.my.salesforce.com", "x.my.salesforce.com",
        "http://127.0.0.1\\@evil.example", "" }) do
        local ok, err = sfreports.new({ instance_url = url, access_token = TOKEN })
        assert.is_nil(ok, url)
        assert.equal("invalid", keep(err).kind, url)
      end
    end)

    it("with a line break never sends a request", function()
      local c, err = sfreports.new({ instance_url = org.url .. "\r\nX-Evil: 1", access_token = org.token,
        retries = 0 })
      assert.is_nil(c)
      assert.equal("invalid", keep(err).kind)
      assert.matches("control characters", err.message)
      assert.equal(0, org:stats().requests)
    end)
  end)

  describe("ids cannot change the request path", function()
    local function calls(id)
      local good, iid = R.tabular_small.id, "0LGFk00000A0001MAB"
      return {
        function() return client:run_sync(id) end,
        function() return client:run_sync(id, { metadata = {} }) end,
        function() return client:run_async(id) end,
        function() return client:describe(id) end,
        function() return client:instances(id) end,
        function() return client:fetch_instance(id, iid) end,
        function() return client:fetch_instance(good, id) end,
        function() return client:delete_instance(id, iid) end,
        function() return client:delete_instance(good, id) end,
        function() return client.transport:run_sync(id) end,
        function() return client.transport:run_async(id) end,
        function() return client.transport:fetch_instance(good, id) end,
      }
    end

    it("refuses every hostile id before any request", function()
      for _, id in ipairs(HOSTILE_IDS) do
        for i, call in ipairs(calls(id)) do
          local r, err = call()
          assert.is_nil(r, id)
          assert.is_true(errors.is(err), ("%q call %d"):format(id, i))
          assert.equal("invalid", keep(err).kind, id)
        end
      end
      assert.equal(0, org:stats().requests)
      assert.equal(0, client.transport:stats().requests)
    end)

    it("refuses a forged instance id before polling it", function()
      org:control("config", { async_delay = 30 })
      local inst = assert(client:run_async(R.tabular_small.id))
      local before = org:stats().requests
      for _, id in ipairs({ "../../../sobjects/Account", "0LG/../../x", "x/%2e%2e/y", "0LG\\..\\x" }) do
        inst.id = id
        local r, err = inst:poll()
        assert.is_nil(r, id)
        assert.equal("invalid", keep(err).kind, id)
        assert.matches("instance id", err.message)
      end
      assert.equal(before, org:stats().requests)
    end)

    it("refuses dot segments and encoded separators in any path the engine is given", function()
      for _, p in ipairs({ "/services/data/v60.0/analytics/reports/../../sobjects",
        "/services/data/v60.0/analytics/reports/%2e%2e/x", "/services/data/v60.0/analytics/%2Fx",
        "/services/data/v60.0/analytics/reports/.", "/services/data/v60.0/analytics\\reports",
        "/services/data/v60.0/analytics/reports#x", "/services/data/v60.0/analytics/reports x" }) do
        local ok, why = pcall(client.transport.request, client.transport, "GET", p)
        assert.is_false(ok, p)
        assert.matches("request path must not contain", why)
      end
      assert.equal(0, org:stats().requests)
    end)

    it("keeps hostile column names in the JSON body, refused against describe", function()
      local bad = { "AMOUNT/../../x", "AMOUNT?x=1", "AMOUNT\r\nX-Evil: 1", "../../../sobjects" }
      for _, col in ipairs(bad) do
        local r, err = client:run_sync(R.tabular_small.id, { filters = { F.eq(col, "1") } })
        assert.is_nil(r, col)
        assert.equal("invalid", keep(err).kind, col)
        local r2, err2 = client:run_sync(R.tabular_small.id, { sort = col })
        assert.is_nil(r2, col)
        assert.equal("invalid", keep(err2).kind, col)
      end
      -- only the describe was ever requested (once: it is cached), never a run
      local stats = org:stats()
      assert.equal(1, stats.requests)
      for path in pairs(stats.by_path) do
        assert.matches("/describe$", path)
      end
    end)
  end)

  describe("headers", function()
    it("refuses a token or header that would add header lines", function()
      assert.has_error(function()
        core.session({ base_url = org.url, token = org.token .. "\r\nX-Evil: 1" })
      end, "sfreports: token must not contain control characters (CR, LF, NUL)")
      local c, err = sfreports.new({ instance_url = org.url, access_token = org.token .. "\nX: 1" })
      assert.is_nil(c)
      assert.equal("invalid", keep(err).kind)
      assert.is_nil(tostring(err):find(org.token, 1, true))
      assert.has_error(function() client.transport:set_token("abc\r\nX-Evil: 1") end)
      assert.has_error(function()
        client:request("GET", client:path("reports"), nil, { ["X-A"] = "1\r\nX-Evil: 1" })
      end)
      assert.has_error(function()
        client:request("GET", client:path("reports"), nil, { ["X-A\r\nX-Evil"] = "1" })
      end)
      assert.equal(0, org:stats().requests)
    end)

    it("never sends the token to an absolute URL", function()
      local r, err = client:request("GET", org:api("60.0") .. "/reports")
      assert.is_nil(r)
      assert.equal("auth", keep(err).kind)
      assert.equal(401, err.status)
      assert(client:list_reports()) -- the same resource by path does carry it
    end)
  end)

  it("caps the response size", function()
    local c = assert(sfreports.new({ instance_url = org.url, access_token = org.token, max_response = 4096 }))
    local r, err = c:run_sync(R.tabular_small.id)
    assert.is_nil(r)
    assert.equal("limit", keep(err).kind)
    assert.matches("max_response %(4096 bytes%)", err.message)
    c:close()
  end)

  describe("TLS", function()
    local tls

    setup(function()
      tls = fakeorg.start({ tls = true })
    end)

    teardown(function()
      if tls then tls:stop() end
    end)

    it("verifies certificates by default, in the client and in the engine", function()
      local c = assert(sfreports.new({ instance_url = tls.url, access_token = tls.token }))
      local r, err = c:list_reports()
      assert.is_nil(r)
      assert.equal("network", keep(err).kind)
      assert.is_false(err.retryable)
      assert.is_false(err.request_sent)
      c:close()
      local s = core.session({ base_url = tls.url, token = tls.token })
      local r2, err2 = s:request("GET", "/services/data/v60.0/analytics/reports")
      assert.is_nil(r2)
      assert.equal("network", keep(err2).kind)
      s:close()
      -- a CA that did not sign the server's certificate is no better than none
      local other = assert(sfreports.new({ instance_url = tls.url, access_token = tls.token,
        cafile = "/etc/ssl/certs/ca-certificates.crt" }))
      local r3, err3 = other:list_reports()
      assert.is_nil(r3)
      assert.equal("network", keep(err3).kind)
      other:close()
      assert.equal(0, tls:stats().requests)
    end)

    it("accepts the server with its CA file, or with verify = false said out loud", function()
      local c = assert(sfreports.new({ instance_url = tls.url, access_token = tls.token, cafile = tls.cafile }))
      assert(c:list_reports())
      c:close()
      local k = assert(sfreports.new({ instance_url = tls.url, access_token = tls.token, verify = false }))
      assert(k:list_reports())
      k:close()
      assert.equal(2, tls:stats().requests)
    end)
  end)

  describe("hostile responses kept from fuzzing", function()
    -- the split of fuzz/response_fuzzer.c: status, flags, raw headers, blank line, body
    local function split(data)
      local status = 100 + (data:byte(1) * 256 + data:byte(2)) % 500
      local allow_empty = data:byte(3) % 2 == 1
      local p = data:sub(4)
      local a = p:find("\n\n", 1, true)
      local b = p:find("\r\n\r\n", 1, true)
      local head, body
      if b and (not a or b < a) then
        head, body = p:sub(1, b + 1), p:sub(b + 4)
      elseif a then
        head, body = p:sub(1, a), p:sub(a + 2)
      else
        head, body = p, ""
      end
      local headers = {}
      for line in head:gmatch("[^\n]+") do
        local name, value = line:match("^([^:]+):[ \t]*(.-)[\r ]*$")
        if name then headers[name:lower()] = value end
      end
      return status, headers, body, allow_empty
    end

    local function assert_result(label, v, err)
      if v == nil then
        assert.is_true(errors.is(err), label)
        assert.is_string(err.kind, label)
        assert.is_true(errors.KINDS[err.kind], label)
        assert.is_string(err.message, label)
      end
    end

    it("are classified, decoded and gunzipped without a raise", function()
      local dir = "spec/fixtures/fuzz_regressions/"
      local p = assert(io.popen("ls " .. dir))
      local n = 0
      for name in p:lines() do
        if name ~= "README.md" then
          local f = assert(io.open(dir .. name, "rb"))
          local data = f:read("*a")
          f:close()
          local status, headers, body, allow_empty = split(data)
          assert_result(name, core.classify(status, headers["content-type"], body, headers, allow_empty))
          assert_result(name, core.decode(body))
          assert_result(name, core.gunzip(body))
          local z, zerr = core.gunzip(body, 64)
          assert_result(name, z, zerr)
          if z then assert.is_true(#z <= 64 + 16384, name) end
          n = n + 1
        end
      end
      p:close()
      assert.is_true(n >= 5)
    end)

    it("a gzip bomb stops at the cap", function()
      local f = assert(io.open("spec/fixtures/fuzz_regressions/gzip_bomb", "rb"))
      local _, _, body = split(f:read("*a"))
      f:close()
      local z, err = core.gunzip(body, 1024 * 1024)
      assert.is_nil(z)
      assert.equal("limit", err.kind)
      assert.equal(8 * 1024 * 1024, #assert(core.gunzip(body)))
    end)
  end)

  it("puts no secret in errors or in the command's output", function()
    -- errors from the network layer, with the token in play
    org:control("fault", { kind = "html502", count = 1 })
    keep(select(2, client:describe(R.tabular_small.id)))
    org:control("expire_tokens")
    keep(select(2, client:list_reports()))
    local refused = assert(sfreports.new({ instance_url = "http://127.0.0.1:1", access_token = org.token,
      retries = 0 }))
    keep(select(2, refused:list_reports()))
    refused:close()
    assert.is_nil(tostring(client):find(org.token, 1, true))
    assert.is_nil(tostring(client.transport):find(org.token, 1, true))

    -- the command line, failing against an org that refuses the token
    local cli = require "sfreports.cli"
    local out, err = {}, {}
    local function sink(t)
      return {
        write = function(self, ...)
          for _, s in ipairs({ ... }) do t[#t + 1] = tostring(s) end
          return self
        end,
        flush = function() end,
      }
    end
    local env = { SF_INSTANCE_URL = org.url, SF_ACCESS_TOKEN = org.token }
    local status = cli.main({ "describe", R.tabular_small.id }, env, { stdout = sink(out), stderr = sink(err) })
    assert.equal(1, status)
    local text = table.concat(out) .. table.concat(err)
    assert.is_true(#text > 0)
    assert.is_nil(text:find(org.token, 1, true))
    assert.is_nil(text:find("fake-access-token", 1, true))

    assert.is_true(#produced >= 20)
    local function scan(v, seen)
      if type(v) == "string" then
        assert.is_nil(v:find("fake-access-token", 1, true), v)
        assert.is_nil(v:find("Bearer", 1, true), v)
      elseif type(v) == "table" and not seen[v] then
        seen[v] = true
        for k, x in pairs(v) do scan(k, seen); scan(x, seen) end
      end
    end
    for _, e in ipairs(produced) do
      scan(e, {})
      scan(tostring(e), {})
    end
  end)
end)
