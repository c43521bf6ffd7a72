-- spec/auth_spec.lua: sfreports.auth against the fake org's OAuth token endpoint (each
-- grant checked against configured credentials, JWT signatures verified with the public
-- key of an RSA pair generated here with the openssl CLI) and against a stand-in `sf`
-- (spec/support/bin/sf) found on PATH. Covers each flow, renewal (once per token
-- generation, also with many requests in flight), bad credentials, and that no secret
-- shows in any error, tostring or dump of the client.
local fakeorg = require "fakeorg"
local sfreports = require "sfreports"
local auth = require "sfreports.auth"

local shell_quote, run = fakeorg.shell_quote, fakeorg.run

local TOKEN_PATH = "/services/oauth2/token"
local REPORT = fakeorg.reports.tabular_small.id

-- Secret values: each must never show anywhere but in the requests that carry it.
local CLIENT_ID = "3MVG9FAKE.consumer.key.for.specs"
local CLIENT_SECRET = "CS-9f2c41e0-very-secret-client-secret"
local REFRESH = "5Aep861-refresh-token-secret-7d1e"
local USERNAME = "integration@example.com"
local PASSWORD = "Pw-secret-42-plus-security-token-x9"

local root = require("nginx").root -- the checkout root

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Generates an RSA key pair into dir: private PEM path, public PEM text.
local function keypair(dir, name)
  local priv, pub = dir .. "/" .. name .. ".pem", dir .. "/" .. name .. ".pub"
  local _, ok = run(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>&1"
    .. " && openssl pkey -in %s -pubout -out %s 2>&1"):format(shell_quote(priv), shell_quote(priv), shell_quote(pub)))
  assert(ok, "openssl failed")
  return priv, read(pub)
end

local function token_calls(org)
  return org:stats().by_path[TOKEN_PATH] or 0
end

-- Every string reachable from v (keys, values, tostring of everything), skipping the keys
-- in skip; cycles are followed once.
local function dump(v, skip, out, seen)
  out, seen = out or {}, seen or {}
  out[#out + 1] = tostring(v)
  if type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      if not (skip and skip[k]) then
        dump(k, skip, out, seen)
        dump(x, skip, out, seen)
      end
    end
  end
  return table.concat(out, "\n")
end

-- nginx config for the OpenResty case: /renew makes a client (its first token comes over
-- a cosocket), expires every token of the fake org, then runs the same report in several
-- light threads at once and answers with what happened.
local NGINX_SERVER = [==[
        location = /renew {
            content_by_lua_block {
                local cjson = require "cjson"
                ngx.req.read_body()
                local q = cjson.decode(ngx.req.get_body_data())
                local client, err = require("sfreports").new{ auth = q.auth }
                if not client then ngx.say(cjson.encode({ err = tostring(err) })) return end
                local transport = client.transport
                assert(transport:request("POST", q.auth.login_url .. "/__fake/expire_tokens", "{}"))
                local threads, out = {}, { ok = 0, errs = {} }
                for i = 1, q.n do
                    threads[i] = ngx.thread.spawn(function() return client:run_sync(q.report) end)
                end
                for i = 1, q.n do
                    local _, report, rerr = ngx.thread.wait(threads[i])
                    if report then out.ok = out.ok + 1 else out.errs[#out.errs + 1] = tostring(rerr) end
                end
                out.generation = client.sender.generation
                out.transport = tostring(transport)
                ngx.say(cjson.encode(out))
            }
        }
]==]

describe("sfreports.auth", function()
  local org, tmp, bin, key_file, key_pem, public_pem, other_key_file

  setup(function()
    org = fakeorg.start()
    tmp = run("mktemp -d /tmp/sfreports-auth.XXXXXX"):gsub("%s+$", "")
    bin = root() .. "/spec/support/bin"
    key_file, public_pem = keypair(tmp, "app")
    key_pem = read(key_file)
    other_key_file = keypair(tmp, "other")
  end)

  teardown(function()
    if org then org:stop() end
    if tmp then run("rm -rf " .. shell_quote(tmp)) end
  end)

  before_each(function()
    org:reset()
    assert.is_true(org:control("oauth", {
      client_id = CLIENT_ID, client_secret = CLIENT_SECRET, refresh_token = REFRESH,
      username = USERNAME, password = PASSWORD, public_key = public_pem,
    }).ok)
  end)

  local function new(a, extra)
    local opts = { auth = a }
    for k, v in pairs(extra or {}) do opts[k] = v end
    a.login_url = a.login_url or (a.flow ~= "sf_cli" and org.url or nil)
    return sfreports.new(opts)
  end

  local FLOWS = {
    refresh_token = { flow = "refresh_token", client_id = CLIENT_ID, client_secret = CLIENT_SECRET,
      refresh_token = REFRESH },
    client_credentials = { flow = "client_credentials", client_id = CLIENT_ID, client_secret = CLIENT_SECRET },
    password = { flow = "password", client_id = CLIENT_ID, client_secret = CLIENT_SECRET,
      username = USERNAME, password = PASSWORD },
  }
  local function flow(name, changes)
    local a = {}
    for k, v in pairs(FLOWS[name]) do a[k] = v end
    for k, v in pairs(changes or {}) do
      if v == false then a[k] = nil else a[k] = v end -- false: leave the option out
    end
    return a
  end

  -- Runs a report, expires every token, runs it again: the second run renews once.
  local function run_renew_run(client, endpoint_calls)
    local r1, e1 = client:run_sync(REPORT)
    assert.is_nil(e1)
    assert.are.equal(40, r1:row_count())
    local before = token_calls(org)
    org:control("expire_tokens")
    local r2, e2 = client:run_sync(REPORT)
    assert.is_nil(e2)
    assert.are.equal(40, r2:row_count())
    assert.are.equal(before + (endpoint_calls or 1), token_calls(org))
  end

  describe("OAuth flows", function()
    for _, name in ipairs({ "refresh_token", "client_credentials", "password" }) do
      it(name .. ": gets a token and the instance URL, and renews after expiry", function()
        local tokens = {}
        local client = assert(new(flow(name), { on_token = function(t, info)
          tokens[#tokens + 1] = t
          assert.are.equal(name, info.flow)
          assert.are.equal(org.url, info.instance_url)
        end }))
        assert.are.equal(org.url, client.instance_url)
        assert.are.equal(1, token_calls(org))
        run_renew_run(client)
        assert.are.equal(2, #tokens)
        assert.are_not.equal(tokens[1], tokens[2])
        assert.are.equal(1, client:auth_info().renewals)
        client:close()
      end)
    end

    it("refresh_token: keeps a rotated refresh token and uses it for the next renewal", function()
      org:control("oauth", { client_id = CLIENT_ID, refresh_token = REFRESH, rotate_refresh = true })
      local rotated = {}
      local client = assert(new(flow("refresh_token", { client_secret = false }), {
        on_token = function(_, info) rotated[#rotated + 1] = info.refresh_token end }))
      assert.is_string(rotated[1])
      assert.are_not.equal(REFRESH, rotated[1])
      run_renew_run(client) -- the fake org accepts only the latest refresh token
      org:control("expire_tokens")
      assert.is_nil(select(2, client:run_sync(REPORT)))
      assert.are.equal(3, #rotated)
      assert.are_not.equal(rotated[2], rotated[3])
      -- the original refresh token is spent
      local _, err = new(flow("refresh_token", { client_secret = false }))
      assert.are.equal("auth", err.kind)
      client:close()
    end)

    it("bad credentials are auth errors carrying the endpoint's error_description", function()
      local cases = {
        { flow("refresh_token", { refresh_token = "5Aep-wrong" }), "expired access/refresh token", "invalid_grant" },
        { flow("refresh_token", { client_id = "wrong-client" }), "client identifier invalid", "invalid_client_id" },
        { flow("client_credentials", { client_secret = "wrong" }), "invalid client credentials", "invalid_client" },
        { flow("password", { password = "wrong" }), "authentication failure", "invalid_grant" },
        { flow("password", { username = "nobody@example.com" }), "authentication failure", "invalid_grant" },
      }
      for _, c in ipairs(cases) do
        local client, err = new(c[1])
        assert.is_nil(client)
        assert.are.equal("auth", err.kind)
        assert.are.equal(c[2], err.message)
        assert.are.equal(c[3], err.code)
        assert.are.equal(400, err.status)
        assert.are.equal(c[1].flow, err.flow)
      end
    end)

    it("an unreachable or failing token endpoint keeps its error kind (retryable), not auth", function()
      local _, err = new(flow("client_credentials", { login_url = "http://127.0.0.1:9" }))
      assert.are.equal("network", err.kind)
      org:control("fault", { kind = "server_error", path = "^/services/oauth2/token" })
      _, err = new(flow("client_credentials"))
      assert.are.equal("api", err.kind)
      assert.are.equal(500, err.status)
      assert.truthy(new(flow("client_credentials"))) -- the fault was for one request
    end)

    it("the instance URL given in the options wins over the token response", function()
      local client = assert(new(flow("client_credentials"), { instance_url = org.url .. "/" }))
      assert.are.equal(org.url, client.instance_url)
      local _, err = new(flow("client_credentials", { instance_url = "http://example.com" }))
      assert.are.equal("invalid", err.kind)
    end)
  end)

  describe("JWT bearer flow", function()
    local function jwt(changes)
      local a = { flow = "jwt", client_id = CLIENT_ID, username = USERNAME, private_key = key_pem }
      for k, v in pairs(changes or {}) do
        if v == false then a[k] = nil else a[k] = v end -- false: leave the option out
      end
      return a
    end

    it("signs an RS256 assertion the fake org verifies, with the key as text or as a file", function()
      local client = assert(new(jwt()))
      run_renew_run(client)
      client:close()
      client = assert(new(jwt({ private_key = false, private_key_file = key_file })))
      assert.is_nil(select(2, client:run_sync(REPORT)))
      client:close()
    end)

    it("an assertion signed by another key, for another user or audience is refused", function()
      local _, err = new(jwt({ private_key = false, private_key_file = other_key_file }))
      assert.are.equal("auth", err.kind)
      assert.are.equal("invalid assertion: signature does not verify", err.message)
      _, err = new(jwt({ username = "someone@example.com" }))
      assert.are.equal("user hasn't approved this consumer", err.message)
      _, err = new(jwt({ audience = "https://test.salesforce.com/" }))
      assert.are.equal("audience is invalid", err.message)
      _, err = new(jwt({ client_id = "other-app" }))
      assert.are.equal("invalid_client_id", err.code)
      -- a configured audience must match exactly; the login URL is the default one
      org:control("oauth", { client_id = CLIENT_ID, username = USERNAME, public_key = public_pem,
        audience = "https://test.salesforce.com" })
      _, err = new(jwt())
      assert.are.equal("audience is invalid", err.message)
      assert.truthy(new(jwt({ audience = "https://test.salesforce.com" })))
    end)

    it("a key that is not a PEM RSA private key is an auth error before any request", function()
      local _, err = new(jwt({ private_key = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n" }))
      assert.are.equal("auth", err.kind)
      assert.matches("PEM", err.message)
      assert.are.equal(0, token_calls(org))
      _, err = new(jwt({ private_key = false, private_key_file = tmp .. "/missing.pem" }))
      assert.are.equal("invalid", err.kind)
      assert.matches("private_key_file", err.message)
    end)
  end)

  describe("renewal", function()
    it("a client with a plain access token returns the auth error and never calls the endpoint", function()
      local client = assert(sfreports.new{ instance_url = org.url, access_token = org.token })
      org:control("expire_tokens")
      local _, err = client:run_sync(REPORT)
      assert.are.equal("auth", err.kind)
      assert.are.equal("INVALID_SESSION_ID", err.code)
      assert.are.equal(0, token_calls(org))
      client:close()
    end)

    it("renews once per token generation across sequential requests", function()
      local client = assert(new(flow("client_credentials")))
      org:control("expire_tokens")
      for _ = 1, 4 do assert.is_nil(select(2, client:run_sync(REPORT))) end
      assert.are.equal(2, token_calls(org))
      assert.are.equal(1, client.sender.generation)
      client:close()
    end)

    it("a failed renewal is an auth error with the endpoint's reason", function()
      local client = assert(new(flow("refresh_token")))
      org:control("oauth", { client_id = CLIENT_ID, refresh_token = "5Aep-another-one" })
      org:control("expire_tokens")
      local _, err = client:run_sync(REPORT)
      assert.are.equal("auth", err.kind)
      assert.are.equal("expired access/refresh token", err.message)
      assert.are.equal(0, client.sender.generation)
      client:close()
    end)

    it("many requests in flight that fail together cause a single renewal (run_many)", function()
      assert.is_function(sfreports.new{ instance_url = org.url, access_token = "x" }.run_many)
      org:control("config", { async_delay = 0.05 })
      local client = assert(new(flow("client_credentials")))
      -- a slow token endpoint widens the window in which the others fail too
      org:control("oauth", { client_id = CLIENT_ID, client_secret = CLIENT_SECRET, delay = 0.1 })
      local list = {}
      local keys = { "tabular_small", "summary_1", "matrix", "summary_3", "slow" }
      for i = 1, 10 do
        local key = keys[(i - 1) % 4 + 1]
        list[i] = { id = fakeorg.reports[key].id, async = i > 5 }
      end
      org:control("expire_tokens")
      local before = org:stats()
      local reports, errs = client:run_many(list)
      local after = org:stats()
      for i = 1, 10 do
        assert.is_nil(errs[i])
        assert.truthy(reports[i])
      end
      assert.are.equal(1, (after.by_path[TOKEN_PATH] or 0) - (before.by_path[TOKEN_PATH] or 0))
      assert.are.equal(1, client.sender.generation)
      -- each of the 10 runs (sync run or instance POST) was sent twice: once with the
      -- expired token, once with the new one; no re-send went out with the expired token
      local sent, seen = 0, {}
      for i = 1, 10 do
        local path = "/services/data/v" .. client.api_version .. "/analytics/reports/" .. list[i].id
          .. (list[i].async and "/instances" or "")
        if not seen[path] then
          seen[path] = true
          sent = sent + (after.by_path[path] or 0) - (before.by_path[path] or 0)
        end
      end
      assert.are.equal(20, sent)
      client:close()
    end)
  end)

  describe("in nginx (cosockets)", function()
    it("gets the first token over a cosocket and renews once for light threads failing together", function()
      local nginx = require "nginx"
      local srv = nginx.start_sfreports({ server = NGINX_SERVER, access_log = "{{PREFIX}}/access.log",
        temp_paths = true, lua_path = "{{ROOT}}/lua/?.lua;{{ROOT}}/lua/?/init.lua" })
      -- a slow token endpoint: every request fails while the renewal is in flight
      org:control("oauth", { client_id = CLIENT_ID, client_secret = CLIENT_SECRET, delay = 0.2 })
      local ok, perr = pcall(function()
        local body = fakeorg.encode({ n = 8, report = REPORT, auth = {
          flow = "client_credentials", login_url = org.url, client_id = CLIENT_ID, client_secret = CLIENT_SECRET } })
        local status, answer = srv:request("/renew", { method = "POST",
          extra = "-H 'Content-Type: application/json' --data-binary " .. shell_quote(body) })
        assert.are.equal(200, status, answer .. srv:error_log())
        local out = fakeorg.decode(answer)
        assert.are.same({}, out.errs)
        assert.are.equal(8, out.ok)
        assert.are.equal(1, out.generation)
        assert.matches("^sfreports.transport_ngx", out.transport)
        assert.are.equal(2, token_calls(org)) -- the first token and one renewal
        assert.is_nil(srv:error_log():find(CLIENT_SECRET, 1, true))
      end)
      srv:stop()
      assert(ok, perr)
    end)
  end)

  describe("Salesforce CLI flow", function()
    local dir

    before_each(function()
      dir = run("mktemp -d " .. shell_quote(tmp .. "/sf.XXXXXX")):gsub("%s+$", "")
      write(dir .. "/dev.url", org.url)
    end)

    -- `sf` is looked up on a PATH that has the stand-in first.
    local function cli_env(path)
      return { "env", "PATH=" .. (path or (bin .. ":" .. os.getenv("PATH"))), "FAKE_SF_DIR=" .. dir, "sf" }
    end

    local function calls()
      local f = io.open(dir .. "/calls", "rb")
      if not f then return {} end
      local out = {}
      for line in f:lines() do out[#out + 1] = line end
      f:close()
      return out
    end

    it("takes the instance URL from display, the token from show-access-token; renews by asking again", function()
      local client = assert(new({ flow = "sf_cli", alias = "dev", cli = cli_env() }))
      assert.are.equal(org.url, client.instance_url)
      assert.are.same({ "org display --target-org dev --json",
        "org auth show-access-token --target-org dev --json" }, calls())
      run_renew_run(client, 0) -- the CLI path never uses the OAuth endpoint
      assert.are.equal(4, #calls())
      client:close()
    end)

    it("uses the token from display on a CLI without show-access-token", function()
      write(dir .. "/dev.mode", "old")
      local client = assert(new({ flow = "sf_cli", alias = "dev", cli = cli_env() }))
      assert.is_nil(select(2, client:run_sync(REPORT)))
      client:close()
    end)

    it("an unknown alias, a missing CLI, a redacted token or garbage output are clear auth errors", function()
      local _, err = new({ flow = "sf_cli", alias = "nope", cli = cli_env() })
      assert.are.equal("auth", err.kind)
      assert.matches("No authorization information found for nope", err.message, 1, true)
      assert.matches("sf org login web --alias nope", err.message, 1, true)
      assert.are.equal("NamedOrgNotFoundError", err.code)

      _, err = new({ flow = "sf_cli", alias = "dev", cli = cli_env(tmp .. "/empty") })
      assert.are.equal("auth", err.kind)
      assert.matches("was not found", err.message, 1, true)

      _, err = new({ flow = "sf_cli", alias = "dev", cli = tmp .. "/no-such-sf" })
      assert.matches("was not found", err.message, 1, true)

      write(dir .. "/dev.mode", "redacted")
      _, err = new({ flow = "sf_cli", alias = "dev", cli = cli_env() })
      assert.are.equal("auth", err.kind)
      assert.matches("redacted", err.message, 1, true)

      write(dir .. "/dev.mode", "garbage")
      _, err = new({ flow = "sf_cli", alias = "dev", cli = cli_env() })
      assert.are.equal("auth", err.kind)
      assert.matches("sf org display", err.message, 1, true)
    end)

    it("finds `sf` on PATH with the default command", function()
      -- a child process whose PATH starts with the stand-in's directory
      local script = ([[
        local c, e = require("sfreports").new{ auth = { flow = "sf_cli", alias = "dev" } }
        io.write(c and c.instance_url or tostring(e))
      ]]):gsub("%s+", " ")
      local lua = arg and arg[-1] or "lua5.4"
      local cmd = ("cd %s && PATH=%s FAKE_SF_DIR=%s LUA_PATH=%s LUA_CPATH=%s %s -e %s 2>&1"):format(
        shell_quote(root()), shell_quote(bin .. ":" .. os.getenv("PATH")), shell_quote(dir),
        shell_quote(package.path), shell_quote(package.cpath), shell_quote(lua), shell_quote(script))
      local out = run(cmd)
      assert.are.equal(org.url, out)
    end)
  end)

  describe("options", function()
    it("rejects unknown options and wrong types by raising, bad values with invalid errors", function()
      assert.has_error(function() new({ flow = "password", pasword = "x" }) end,
        "sfreports: unknown auth option 'pasword'")
      assert.has_error(function() new({ flow = "jwt", private_key = 42 }) end)
      local _, err = new({ flow = "magic" })
      assert.are.equal("invalid", err.kind)
      assert.matches("refresh_token, client_credentials, password, jwt, sf_cli", err.message, 1, true)
      _, err = new({ flow = "password", client_id = CLIENT_ID, client_secret = CLIENT_SECRET, username = USERNAME })
      assert.are.equal("auth.password is required for the password flow", err.message)
      _, err = new(flow("client_credentials", { login_url = "http://login.example.com" }))
      assert.are.equal("invalid", err.kind)
      assert.matches("auth.login_url", err.message, 1, true)
      _, err = new({ flow = "sf_cli" })
      assert.are.equal("invalid", err.kind)
      assert.are.equal(0, token_calls(org))
    end)

    it("defaults login_url (and the JWT audience) to https://login.salesforce.com", function()
      -- a key that cannot sign stops the flow before any request leaves
      local jwt = assert(auth.new({ flow = "jwt", client_id = CLIENT_ID, username = USERNAME,
        private_key = "not a key" }, {}, require("sfreports.secrets").new()))
      local ok, err = jwt:fetch(nil)
      assert.is_nil(ok)
      assert.are.equal("auth", err.kind)
      assert.are.equal("https://login.salesforce.com", jwt.login_url)
      assert.are.equal("https://login.salesforce.com", jwt:describe().login_url)
      local client = assert(new(flow("client_credentials")))
      assert.are.equal(org.url, client:auth_info().login_url)
      client:close()
    end)
  end)

  describe("secrets", function()
    it("never appear in errors, tostring(client), the auth state or a dump of the client", function()
      local texts, secret_values = {}, { CLIENT_SECRET, REFRESH, PASSWORD, CLIENT_ID }
      local function note(v) texts[#texts + 1] = tostring(v) end
      local function note_err(e)
        note(e)
        for k, v in pairs(e) do note(k); note(v) end
      end
      -- private key material: the base64 body lines of the PEM
      for line in key_pem:gmatch("[^\n]+") do
        if not line:find("-----", 1, true) then secret_values[#secret_values + 1] = line end
      end
      local function on_token(t, info)
        secret_values[#secret_values + 1] = t
        note(info.flow); note(info.instance_url)
      end
      local good = {
        flow("refresh_token"), flow("client_credentials"), flow("password"),
        { flow = "jwt", client_id = CLIENT_ID, username = USERNAME, private_key = key_pem },
      }
      for _, a in ipairs(good) do
        local client = assert(new(a, { on_token = on_token }))
        note(client); note(client._flow)
        note(dump(client, { _token = true })) -- the first token seeds the transport (see below)
        org:control("expire_tokens")
        assert.is_nil(select(2, client:run_sync(REPORT)))
        note(dump(client)) -- after a renewal the client table holds no token at all
        note(dump(client:auth_info()))
        -- a renewal that fails
        org:control("oauth", { client_id = "another-app" })
        org:control("expire_tokens")
        note_err(select(2, client:run_sync(REPORT)))
        org:control("oauth", { client_id = CLIENT_ID, client_secret = CLIENT_SECRET, refresh_token = REFRESH,
          username = USERNAME, password = PASSWORD, public_key = public_pem })
        client:close()
        note(dump(client))
      end
      local bad = {
        flow("refresh_token", { client_secret = CLIENT_SECRET .. "x" }),
        flow("client_credentials", { client_secret = "x" .. CLIENT_SECRET }),
        flow("password", { password = PASSWORD .. "!" }),
        flow("password", { login_url = "http://127.0.0.1:9" }),
        { flow = "jwt", client_id = CLIENT_ID, username = USERNAME, private_key = key_pem:sub(1, 200) },
        { flow = "jwt", client_id = CLIENT_ID, username = "x@example.com", private_key = key_pem },
      }
      for _, a in ipairs(bad) do
        local client, err = new(a)
        assert.is_nil(client)
        note_err(err)
      end
      local all = table.concat(texts, "\n")
      assert.is_true(#texts > 40)
      for i, s in ipairs(secret_values) do
        assert.is_nil(all:find(s, 1, true), "secret #" .. i .. " showed")
      end
      -- and the collected text is real: it names the flows and the org
      assert.truthy(all:find("client_credentials", 1, true))
      assert.truthy(all:find(org.url, 1, true))
    end)
  end)
end)
