-- Secrets never leave in an error (issue 15): the scrubber every error passes through,
-- the client's bag (its token, an auth flow's secrets and every token issued), proxies
-- over plain http, and instance URLs that used to raise.
local sfreports = require "sfreports"
local secrets = require "sfreports.secrets"
local errors = require "sfreports.errors"

describe("secrets", function()
  local TOKEN = "00Dxx0000001gPL!AQ4AQFn+sEcReT=t0k/en@x y"

  it("are masked raw, percent-encoded (any subset, any hex case), form-encoded and JSON-escaped", function()
    local bag = secrets.new():add(TOKEN)
    local forms = {
      TOKEN,
      "00Dxx0000001gPL%21AQ4AQFn%2BsEcReT%3Dt0k%2Fen%40x%20y",
      "00Dxx0000001gPL%21AQ4AQFn%2bsEcReT%3dt0k%2fen%40x+y",
      "00Dxx0000001gPL!AQ4AQFn%2BsEcReT%3Dt0k/en@x+y",
      "00Dxx0000001gPL!AQ4AQFn+sEcReT=t0k\\/en@x y",
    }
    for _, f in ipairs(forms) do
      local out = bag:scrub("Authorization: Bearer " .. f .. " was refused")
      assert.equal("Authorization: Bearer [secret] was refused", out, f)
    end
  end)

  it("are masked when a capped text ends inside one", function()
    local bag = secrets.new():add(TOKEN)
    assert.equal("echo: [secret]", bag:scrub("echo: " .. TOKEN:sub(1, 20)))
    -- a short common prefix alone is not a secret
    assert.equal("id 00Dx", bag:scrub("id 00Dx"))
  end)

  it("are masked in every string field of an error, and in tostring(err)", function()
    local bag = secrets.new():add(TOKEN)
    local err = errors.new("api", "bad token " .. TOKEN, { code = TOKEN, excerpt = "x" .. TOKEN,
      fields = { a = TOKEN } })
    bag:scrub_error(err)
    for _, v in ipairs({ err.message, err.code, err.excerpt, err.fields.a, tostring(err) }) do
      assert.is_nil(v:find("sEcReT", 1, true), v)
    end
  end)

  it("the bag never shows what it holds", function()
    local bag = secrets.new():add(TOKEN):add("abc") -- too short to be a secret
    assert.equal(1, bag:count())
    assert.is_nil(tostring(bag):find("sEcReT", 1, true))
    for _, v in pairs(bag) do assert.is_nil(tostring(v):find("sEcReT", 1, true)) end
  end)

  it("a client registers its access token", function()
    local c = assert(sfreports.new({ instance_url = "https://x.my.salesforce.com", access_token = "tok-1234567890" }))
    assert.equal("[secret]", c.secrets:scrub("tok-1234567890"))
    c:close()
  end)
end)

describe("plain http and proxies", function()
  local fakeorg = require "fakeorg"

  it("the environment's proxy is not used for a plain http (loopback) instance", function()
    local org = fakeorg.start()
    -- a proxy that is not there: a request sent through it would fail (connection refused)
    local lua = arg and arg[-1] or "lua5.4"
    local script = ("local s = require 'sfreports'; local c = assert(s.new{instance_url=%q, access_token=%q, "
      .. "retries=0}); local r, e = c:describe(%q); io.write(r and 'direct' or tostring(e))")
      :format(org.url, org.token, fakeorg.reports.tabular_small.id)
    local cmd = ("http_proxy=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1 ALL_PROXY=http://127.0.0.1:1 "
      .. "LUA_PATH=%q LUA_CPATH=%q %s -e %q 2>&1"):format(package.path, package.cpath, lua, script)
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    org:stop()
    assert.equal("direct", out)
  end)

  it("an explicit proxy is refused for a plain http (loopback) instance", function()
    local c, err = sfreports.new({ instance_url = "http://127.0.0.1:9", access_token = "tok-1234567890",
      proxy = "http://127.0.0.1:3128" })
    assert.is_nil(c)
    assert.equal("invalid", err.kind)
    assert.matches("proxy", err.message)
  end)
end)

describe("instance URLs that used to raise", function()
  for _, url in ipairs({ "http://:80", "https://", "https://:443", "https://host:port", "http://[::1" }) do
    it(url .. " is an invalid error", function()
      local ok, c, err = pcall(sfreports.new, { instance_url = url, access_token = "tok-1234567890" })
      assert.is_true(ok, tostring(c))
      assert.is_nil(c)
      assert.equal("invalid", err.kind)
    end)
  end
end)
