-- Unit specs of the C core's decoding, classification and error values (no network).
local core = require "sfreports.core"

describe("sfreports.core", function()
  it("decodes JSON with lua-cjson and keeps null as core.null", function()
    local v = core.decode('{"a":null,"b":[1,2.5,"x"]}')
    assert.equal(core.null, v.a)
    assert.same({ 1, 2.5, "x" }, v.b)
    assert.equal(require("cjson").null, core.null)
  end)

  it("returns a decode error for invalid JSON instead of raising", function()
    local v, err = core.decode('{"a": [1, 2')
    assert.is_nil(v)
    assert.equal("decode", err.kind)
    assert.matches("not valid JSON", err.message)
    assert.is_false(err.retryable)
  end)

  describe("classify", function()
    it("decodes a 2xx JSON body", function()
      local v = core.classify(200, "application/json;charset=UTF-8", '[{"id":"x"}]')
      assert.equal("x", v[1].id)
    end)

    it("returns a 2xx JSON body as its text when raw, and still classifies errors", function()
      local body = '[{"id":"x"}]'
      assert.equal(body, core.classify(200, "application/json", body, nil, false, true))
      local v, err = core.classify(404, "application/json",
        '[{"errorCode":"NOT_FOUND","message":"no such report"}]', nil, false, true)
      assert.is_nil(v)
      assert.equal("NOT_FOUND", err.code)
      v, err = core.classify(200, "text/html", "<html>login</html>", nil, false, true)
      assert.is_nil(v)
      assert.equal("http", err.kind)
    end)

    it("treats a 204 empty body as success", function()
      assert.is_true(core.classify(204, nil, ""))
    end)

    it("refuses an empty 200 body where JSON was expected", function()
      local v, err = core.classify(200, "application/json", "")
      assert.is_nil(v)
      assert.equal("decode", err.kind)
      assert.equal(200, err.status)
    end)

    it("accepts an empty 2xx body when asked to (DELETE)", function()
      assert.is_true(core.classify(200, "application/json", "", nil, true))
    end)

    it("parses Salesforce error arrays into api errors", function()
      local _, err = core.classify(404, "application/json",
        '[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]')
      assert.equal("api", err.kind)
      assert.equal(404, err.status)
      assert.equal("NOT_FOUND", err.code)
      assert.equal("The requested resource does not exist", err.message)
      assert.is_false(err.retryable)
      assert.equal("sfreports: api error (HTTP 404, NOT_FOUND): The requested resource does not exist",
        tostring(err))
    end)

    it("makes INVALID_SESSION_ID an auth error", function()
      local _, err = core.classify(401, "application/json",
        '[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]')
      assert.equal("auth", err.kind)
      assert.equal("INVALID_SESSION_ID", err.code)
    end)

    it("makes REQUEST_LIMIT_EXCEEDED a retryable limit error with its retry hint", function()
      local _, err = core.classify(403, "application/json",
        '[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]',
        { ["retry-after"] = "30" })
      assert.equal("limit", err.kind)
      assert.is_true(err.retryable)
      assert.equal(30, err.retry_after)
    end)

    it("keeps the fields of a MALFORMED_ID error", function()
      local _, err = core.classify(400, "application/json",
        '[{"fields":["Id"],"message":"malformed id 001","errorCode":"MALFORMED_ID"}]')
      assert.equal("api", err.kind)
      assert.same({ "Id" }, err.fields)
    end)

    it("gives a clean http error with a short excerpt for an HTML 502 page", function()
      local page = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
        .. string.rep("<p>filler text</p>", 100) .. "</body></html>"
      local v, err = core.classify(502, "text/html", page)
      assert.is_nil(v)
      assert.equal("http", err.kind)
      assert.equal(502, err.status)
      assert.is_true(err.retryable)
      assert.matches("^non%-JSON response body: 502 Bad Gateway Bad Gateway", err.message)
      assert.is_true(#err.message < 260)
      assert.not_matches("<", err.message)
    end)

    it("does not crash on invalid JSON in an error body", function()
      local _, err = core.classify(500, "application/json", "{oops")
      assert.equal("http", err.kind)
      assert.equal(500, err.status)
    end)

    it("refuses HTML served with a 2xx status", function()
      local _, err = core.classify(200, "text/html", "<html>login page</html>")
      assert.equal("http", err.kind)
      assert.matches("text/html", err.message)
    end)

    it("reads OAuth token endpoint errors as auth errors", function()
      local _, err = core.classify(400, "application/json",
        '{"error":"invalid_grant","error_description":"authentication failure"}')
      assert.equal("auth", err.kind)
      assert.equal("invalid_grant", err.code)
      assert.equal("authentication failure", err.message)
    end)
  end)

  describe("sessions", function()
    it("raise on misuse", function()
      assert.has_error(function() core.session() end)
      assert.has_error(function() core.session({ base_url = 1 }) end)
      assert.has_error(function() core.session({ base_url = "http://127.0.0.1:1", timeout = "x" }) end)
      local s = core.session({ base_url = "http://127.0.0.1:1" })
      assert.has_error(function() s:request("FETCH", "/x") end)
      assert.has_error(function() s:request("GET", "relative") end)
      s:close()
      assert.has_error(function() s:request("GET", "/x") end, "sfreports: session is closed")
      s:close() -- idempotent
    end)

    it("refuse ids that could change the request path, before any request", function()
      local s = core.session({ base_url = "http://127.0.0.1:1" })
      local v, err = s:run_sync("00O/../../sobjects")
      assert.is_nil(v)
      assert.equal("invalid", err.kind)
      assert.equal(0, s:stats().requests)
      local _, err2 = s:fetch_instance("00OR0000000PYkiMAG", "0LG?x=1")
      assert.equal("invalid", err2.kind)
    end)

    it("report a refused connection as a network error that never reached the server", function()
      local s = core.session({ base_url = "http://127.0.0.1:1", connect_timeout = 2 })
      local v, err = s:request("GET", "/services/data/")
      assert.is_nil(v)
      assert.equal("network", err.kind)
      assert.is_false(err.request_sent)
      assert.is_true(err.retryable)
    end)

    it("refuse schemes other than http and https", function()
      local s = core.session({ base_url = "http://127.0.0.1:1" })
      local _, err = s:request("GET", "http://127.0.0.1:1/x")
      assert.equal("network", err.kind)
      local s2 = core.session({ base_url = "file:///etc" })
      local _, err2 = s2:request("GET", "/passwd")
      assert.equal("invalid", err2.kind)
    end)
  end)

  it("sleeps and keeps monotonic time", function()
    local t0 = core.monotime()
    core.sleep(0.05)
    assert.is_true(core.monotime() - t0 >= 0.04)
  end)
end)
