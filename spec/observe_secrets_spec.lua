-- observe_secrets_spec: no secret reaches the on_request hook's info, for every way a
-- client gets its token (an access token, the four OAuth flows, the Salesforce CLI),
-- even from a server that echoes what it received: a token endpoint repeating the form
-- it refused (every secret of the grant, URL-encoded) and an API answering with the
-- Authorization header in its error (spec/support/hostile.lua). Each case also checks
-- that the echo was there, masked, so that it would fail if nothing were echoed.
local sfreports = require "sfreports"
local fakeorg = require "fakeorg"
local hostile = require "hostile"
local nginx = require "nginx"

local shell_quote, run = fakeorg.shell_quote, fakeorg.run
local REPORT = fakeorg.reports.tabular_small.id

local CLIENT_ID = "3MVG9OBSERVE.consumer.key.spec"
local CLIENT_SECRET = "CS-observe-0a1b2c-secret-value"
local REFRESH = "5Aep861-observe+refresh/secret=7d1e"
local USERNAME = "observe@example.com"
local PASSWORD = "Pw-observe-42+security token"
local TOKEN = "00DFk0000001obs!AQ+s3cr3t=t0k3n/xyz@w"
local JWT_HEADER = "eyJhbGciOiJSUzI1NiJ9" -- base64url('{"alg":"RS256"}'): the start of every assertion

-- Every string reachable from v (keys, values, tostring of each), cycles followed once.
local function dump(v, out, seen)
  out, seen = out or {}, seen or {}
  out[#out + 1] = tostring(v)
  if type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      dump(k, out, seen)
      dump(x, out, seen)
    end
  end
  return table.concat(out, "\n")
end

-- The forms a secret may take in what a server echoes: raw, and URL-encoded (both cases).
local function forms(secret)
  local enc = secret:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  local plus = secret:gsub(" ", "+")
  return { secret, enc, enc:lower(), plus }
end

local function assert_clean(text, secrets)
  for _, s in ipairs(secrets) do
    for _, f in ipairs(forms(s)) do
      assert.is_nil(text:find(f, 1, true), ("a secret leaked (%s...) in:\n%s"):format(s:sub(1, 6), text))
    end
  end
end

describe("secrets never reach the on_request hook", function()
  local org, srv, tmp, key_pem

  setup(function()
    org = fakeorg.start()
    srv = hostile.start()
    tmp = run("mktemp -d /tmp/sfr-observe.XXXXXX"):gsub("%s+$", "")
    local priv = tmp .. "/key.pem"
    local _, ok = run(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>&1"):format(
      shell_quote(priv)))
    assert(ok, "openssl failed")
    key_pem = assert(fakeorg.read_file(priv))
  end)
  teardown(function()
    if srv then srv:stop() end
    if org then nginx.stop_orgs({ org }) end
    if tmp then run("rm -rf " .. shell_quote(tmp)) end
  end)

  local FLOWS = {
    refresh_token = { client_id = CLIENT_ID, client_secret = CLIENT_SECRET, refresh_token = REFRESH },
    client_credentials = { client_id = CLIENT_ID, client_secret = CLIENT_SECRET },
    password = { client_id = CLIENT_ID, client_secret = CLIENT_SECRET, username = USERNAME, password = PASSWORD },
    jwt = { client_id = CLIENT_ID, username = USERNAME },
  }
  local SECRETS = { CLIENT_ID, CLIENT_SECRET, REFRESH, PASSWORD, JWT_HEADER }

  local function auth_of(flow, login_url)
    local a = { flow = flow, login_url = login_url }
    for k, v in pairs(FLOWS[flow]) do a[k] = v end
    if flow == "jwt" then a.private_key = key_pem end
    return a
  end

  for _, flow in ipairs({ "refresh_token", "client_credentials", "password", "jwt" }) do
    it(flow .. ": a token endpoint echoing the grant's form", function()
      local id = hostile.new_id()
      srv:set_case("echo_body", id)
      local infos = {}
      local c, err = sfreports.new({ auth = auth_of(flow, srv.url), retries = 0,
        on_request = function(info) infos[#infos + 1] = info end })
      assert.is_nil(c)
      assert.equal("auth", err.kind)
      assert.equal(1, #infos)
      assert.equal(1, srv:seen(id).requests)
      local info = infos[1]
      assert.equal("token", info.op)
      assert.equal("/services/oauth2/token", info.path)
      assert.equal(400, info.status)
      local text = dump(info)
      assert.matches("refused: ", text, 1, true) -- the echo arrived...
      assert.matches("[secret]", text, 1, true)  -- ...masked
      assert_clean(text, SECRETS)
    end)

    it(flow .. ": an API echoing the Authorization header, after a real token", function()
      local id = hostile.new_id()
      srv:set_case("echo_error", id)
      local infos, tokens = {}, {}
      local c = assert(sfreports.new({ auth = auth_of(flow, org.url), instance_url = srv.url, retries = 0,
        on_token = function(t) tokens[#tokens + 1] = t end,
        on_request = function(info) infos[#infos + 1] = info end }))
      local r, err = c:describe(REPORT)
      assert.is_nil(r)
      assert.equal(400, err.status)
      assert.equal(1, #tokens)
      assert.same({ "token", "describe" }, { infos[1].op, infos[2].op })
      local text = dump(infos)
      assert.matches("Bearer [secret]", text, 1, true)
      local secrets = { tokens[1] }
      for _, s in ipairs(SECRETS) do secrets[#secrets + 1] = s end
      assert_clean(text, secrets)
      c:close()
    end)
  end

  it("a capped message ending in a dotted secret's prefix and '...' hides that prefix", function()
    local bag = require("sfreports.secrets").new()
    local assertion = JWT_HEADER .. ".eyJpc3MiOiIzTVZHOSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    bag:add(assertion)
    for cut = 12, #assertion - 1 do
      local text = "refused: assertion=" .. assertion:sub(1, cut) .. "..."
      assert.equal("refused: assertion=[secret]...", bag:scrub(text))
    end
  end)

  it("an access token: an API echoing the Authorization header", function()
    local id = hostile.new_id()
    srv:set_case("echo_error", id)
    local infos = {}
    local c = assert(sfreports.new({ instance_url = srv.url, access_token = TOKEN, retries = 0,
      on_request = function(info) infos[#infos + 1] = info end }))
    assert.is_nil(c:describe(REPORT))
    assert.is_nil(c:run_sync(REPORT))
    local reports = c:run_many({ REPORT })
    assert.is_nil(reports[1])
    assert.equal(3, #infos)
    local text = dump(infos)
    assert.matches("[secret]", text, 1, true)
    assert_clean(text, { TOKEN })
    c:close()
  end)

  it("sf_cli: the Salesforce CLI's token, echoed by an API", function()
    local bin = nginx.root() .. "/spec/support/bin"
    local dir = run("mktemp -d " .. shell_quote(tmp .. "/sf.XXXXXX")):gsub("%s+$", "")
    local f = assert(io.open(dir .. "/dev.url", "wb"))
    f:write(org.url)
    f:close()
    local id = hostile.new_id()
    srv:set_case("echo_error", id)
    local infos, tokens = {}, {}
    local c = assert(sfreports.new({ auth = { flow = "sf_cli", alias = "dev",
      cli = { "env", "PATH=" .. bin .. ":" .. os.getenv("PATH"), "FAKE_SF_DIR=" .. dir, "sf" } },
      instance_url = srv.url, retries = 0,
      on_token = function(t) tokens[#tokens + 1] = t end,
      on_request = function(info) infos[#infos + 1] = info end }))
    assert.is_nil(c:describe(REPORT))
    assert.equal(1, #tokens)
    assert.equal(1, #infos) -- the CLI's token came without an HTTP exchange of the client
    local text = dump(infos)
    assert.matches("Bearer [secret]", text, 1, true)
    assert_clean(text, { tokens[1] })
    c:close()
  end)
end)
