-- Unit specs of the client's checks that run before any request (no network).
local sfreports = require "sfreports"
local client = require "sfreports.client"
local ids = require "sfreports.ids"
local json = require "sfreports.json"

local TOKEN = "00Dunit!secret-token-value"

describe("sfreports.new", function()
  it("accepts https and loopback http instance URLs", function()
    for _, url in ipairs({ "https://acme.my.salesforce.com", "https://acme.my.salesforce.com/",
      "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:99", "http://127.9.8.7" }) do
      local c, err = sfreports.new({ instance_url = url, access_token = TOKEN })
      assert.is_truthy(c, tostring(err))
      c:close()
    end
  end)

  it("refuses plain http to a non-loopback host, naming the problem", function()
    local c, err = sfreports.new({ instance_url = "http://acme.my.salesforce.com", access_token = TOKEN })
    assert.is_nil(c)
    assert.equal("invalid", err.kind)
    assert.matches("plain http", err.message)
  end)

  it("refuses URLs with paths, other schemes and user info", function()
    for url, why in pairs({ ["https://x.my.salesforce.com/services/data"] = "no path",
      ["ftp://x"] = "https", ["x.my.salesforce.com"] = "absolute URL",
      ["https://u:p@x.my.salesforce.com"] = "user information",
      ["http://127.0.0.1.evil.com"] = "plain http" }) do
      local c, err = sfreports.new({ instance_url = url, access_token = TOKEN })
      assert.is_nil(c, url)
      assert.matches(why, err.message, 1, true)
    end
  end)

  it("requires a token and never shows it", function()
    local c, err = sfreports.new({ instance_url = "https://x.my.salesforce.com" })
    assert.is_nil(c)
    assert.matches("access_token", err.message)
    local c2 = assert(sfreports.new({ instance_url = "https://x.my.salesforce.com", access_token = TOKEN }))
    assert.not_matches("secret", tostring(c2))
    assert.equal("sfreports.client(https://x.my.salesforce.com, v" .. sfreports.DEFAULT_API_VERSION .. ")",
      tostring(c2))
  end)

  it("normalises and checks the API version", function()
    local c = assert(sfreports.new({ instance_url = "https://x.my.salesforce.com", access_token = TOKEN,
      api_version = "v62" }))
    assert.equal("62.0", c.api_version)
    local c2, err = sfreports.new({ instance_url = "https://x.my.salesforce.com", access_token = TOKEN,
      api_version = "latest!" })
    assert.is_nil(c2)
    assert.matches("api_version", err.message)
  end)

  it("raises on unknown options and wrong option types (misuse)", function()
    assert.has_error(function() sfreports.new({ instance_url = "https://x", access_tokn = "x" }) end,
      "sfreports: unknown option 'access_tokn' for sfreports.new")
    assert.has_error(function() sfreports.new({ timeout = "10" }) end)
    assert.has_error(function() sfreports.new("https://x") end)
  end)

  it("reads the environment", function()
    local env = { SF_INSTANCE_URL = "https://e.my.salesforce.com", SF_ACCESS_TOKEN = TOKEN, SF_API_VERSION = "63.0" }
    local c = assert(client.from_env(nil, function(k) return env[k] end))
    assert.equal("63.0", c.api_version)
    assert.equal("https://e.my.salesforce.com", c.instance_url)
    local c2, err = client.from_env(nil, function() return nil end)
    assert.is_nil(c2)
    assert.matches("SF_INSTANCE_URL", err.message)
  end)
end)

describe("validation before any request", function()
  local c = assert(sfreports.new({ instance_url = "http://127.0.0.1:1", access_token = TOKEN }))

  it("checks report ids, including the 18-character checksum", function()
    local r, err = c:run_sync("00OR0000000PYkiMAX")
    assert.is_nil(r)
    assert.equal("invalid", err.kind)
    assert.matches("checksum", err.message)
    local _, err2 = c:run_sync("00OR0000000PYk")
    assert.matches("15 or 18", err2.message)
    local _, err3 = c:describe("00OR0000000PYk/..")
    assert.equal("invalid", err3.kind)
    local _, err4 = c:fetch_instance("00OR0000000PYkiMAG", "0LGR00000000He3OAX")
    assert.matches("instance id", err4.message)
    assert.equal(0, c.transport:stats().requests)
  end)

  it("raises on unknown run options", function()
    assert.has_error(function() c:run_sync("00OR0000000PYkiMAG", { detials = true }) end,
      "sfreports: unknown option 'detials' for run_sync")
  end)
end)

describe("sfreports.ids", function()
  it("computes the Salesforce case checksum", function()
    assert.equal("00OR0000000PYkiMAG", ids.to18("00OR0000000PYki"))
    assert.equal("0LGR00000000He3OAE", ids.to18("0LGR00000000He3"))
    assert.is_true(ids.check("003580000025sonAAA"))
    assert.is_true(ids.check("00OR0000000PYki"))
    assert.is_nil((ids.check("00OR0000000pYkiMAG")))
  end)
end)

describe("sfreports.json", function()
  it("encodes marked empty arrays as arrays and keeps numbers exact", function()
    assert.equal('{"a":[],"b":{},"c":[1,2],"d":null,"e":0.1,"f":9007199254740991}',
      json.encode({ a = json.array(), b = {}, c = { 1, 2 }, d = json.null, e = 0.1, f = 9007199254740991 }))
  end)

  it("raises on values JSON cannot hold", function()
    assert.has_error(function() json.encode({ f = print }) end)
    assert.has_error(function() json.encode({ 0 / 0 }) end)
    assert.has_error(function() json.encode({ [true] = 1 }) end)
  end)
end)

describe("sfreports.json pretty output and array marks", function()
  it("writes one member per line, sorted, without escaping slashes", function()
    local out = json.encode({ b = { 1, json.array() }, a = "x/y", c = {} }, { pretty = true })
    assert.equal('{\n  "a": "x/y",\n  "b": [\n    1,\n    []\n  ],\n  "c": {}\n}', out)
    assert.same({ a = "x/y", b = { 1, {} }, c = {} }, require("cjson").decode(out))
  end)

  it("marks empty report-metadata lists as arrays so they encode back as []", function()
    local md = require("cjson").decode('{"reportFilters":[],"sortBy":[],"standardDateFilter":{},'
      .. '"groupingsDown":[{"name":"X"}]}')
    assert.equal('{"groupingsDown":[{"name":"X"}],"reportFilters":[],"sortBy":[],"standardDateFilter":{}}',
      json.encode(json.mark_arrays(md)))
  end)
end)

describe("retry options", function()
  it("are checked when the client is made", function()
    local base = { instance_url = "https://x.my.salesforce.com", access_token = "t" }
    local function with(k, v)
      local o = { [k] = v }
      for kk, vv in pairs(base) do o[kk] = vv end
      return o
    end
    assert.has_error(function() sfreports.new(with("retries", -1)) end,
      "sfreports: option 'retries' for sfreports.new must be a whole number >= 0 and <= 100, got -1")
    assert.has_error(function() sfreports.new(with("retries", 1.5)) end)
    assert.has_error(function() sfreports.new(with("retry_base", -0.1)) end)
    assert.is_truthy(sfreports.new(with("retries", 0)))
  end)
end)
