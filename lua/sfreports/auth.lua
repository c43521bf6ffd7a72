-- sfreports.auth: where a client's access token comes from, and how it is renewed.
--   OAuth 2.0 token endpoint flows: refresh_token, client_credentials, password, and jwt
--   (an RS256 assertion signed by the C core), against login, test or a My Domain URL;
--   sf_cli: the Salesforce CLI's stored login (`sf org display` for the instance URL,
--   `sf org auth show-access-token` for the token, which newer CLIs redact in `display`).
-- sfreports.client calls attach() while it is being built and renew() on an `auth` error
-- (once per token generation). Secrets (client secret, refresh token, password, private
-- key, access tokens) live in a private weak table keyed by the client's auth state, so
-- neither an error, tostring() nor a dump of the client shows them.
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local json = require "sfreports.json"

local type, pairs, ipairs, tostring, setmetatable = type, pairs, ipairs, tostring, setmetatable
local format, match, gsub, find, sub, byte = string.format, string.match, string.gsub,
  string.find, string.sub, string.byte
local concat = table.concat

local M = {}

M.DEFAULT_LOGIN_URL = "https://login.salesforce.com"
M.TOKEN_PATH = "/services/oauth2/token"
-- Seconds a JWT assertion stays valid; Salesforce wants expiry a few minutes ahead.
M.JWT_LIFETIME = 180

local JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

local AUTH_OPTIONS = {
  flow = "string", login_url = "string", client_id = "string", client_secret = "string",
  refresh_token = "string", username = "string", password = "string", private_key = "string",
  private_key_file = "string", alias = "string", audience = "string", instance_url = "string",
  cli = "string|table",
}

-- Per flow: the options it cannot do without (sf_cli takes alias or username).
local REQUIRED = {
  refresh_token = { "client_id", "refresh_token" },
  client_credentials = { "client_id", "client_secret" },
  password = { "client_id", "client_secret", "username", "password" },
  jwt = { "client_id", "username" },
  sf_cli = {},
}
M.FLOWS = { "refresh_token", "client_credentials", "password", "jwt", "sf_cli" }

-- Options that are secrets: kept only in the private table.
local SECRET_FIELDS = { "client_id", "client_secret", "refresh_token", "password", "private_key" }

-- state -> { secret fields..., token = current access token }; weak, so a dropped client
-- takes its secrets with it.
local secrets = setmetatable({}, { __mode = "k" })

local State = {}
State.__index = State

function State:__tostring()
  return format("sfreports.auth(%s, %s)", self.flow, self.alias or self.login_url)
end

---------------------------------------------------------------------------
-- secrets never leave in a message

-- Replaces every secret string held for st found in s.
local function scrub(st, s)
  local sec = st and secrets[st]
  if not sec or type(s) ~= "string" then return s end
  for _, v in pairs(sec) do
    if type(v) == "string" and #v >= 4 then
      local i = find(s, v, 1, true)
      while i do
        s = sub(s, 1, i - 1) .. "[secret]" .. sub(s, i + #v)
        i = find(s, v, i + 8, true)
      end
    end
  end
  return s
end

local function auth_error(st, message, fields)
  fields = fields or {}
  fields.flow = st.flow
  if fields.retryable == nil then fields.retryable = false end
  return errors.new("auth", scrub(st, message), fields)
end

---------------------------------------------------------------------------
-- option checking

local function check_auth_options(a)
  for k, v in pairs(a) do
    local want = AUTH_OPTIONS[k]
    if not want then
      error(format("sfreports: unknown auth option '%s'", tostring(k)), 4)
    end
    if not match(want, type(v)) then
      error(format("sfreports: auth option '%s' must be a %s, got %s", k, want, type(v)), 4)
    end
  end
end

-- login_url: scheme and host checked like an instance URL (https, or http on loopback);
-- a path (an Experience Cloud site) is kept.
local function check_login_url(url)
  local origin, path = match(url, "^(%a[%w+.-]*://[^/?#]+)(/?[^?#]*)$")
  if not origin then
    return nil, errors.invalid(format("auth.login_url %q is not an absolute URL", url))
  end
  local ok, err = require("sfreports.client").check_instance_url(origin)
  if not ok then return nil, errors.invalid("auth.login_url: " .. err.message) end
  return ok .. gsub(path, "/+$", "")
end

local function read_file(path)
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  local s = f:read("*a")
  f:close()
  return s
end

-- Copies the client options without the auth table and the access token, so the client
-- keeps what the transport needs and no secret.
local function without_secrets(opts)
  local copy = {}
  for k, v in pairs(opts) do
    if k ~= "auth" and k ~= "access_token" then copy[k] = v end
  end
  return copy
end

local cli_prefix -- defined with the CLI helpers below

-- Builds the auth state and its private secrets. Returns state, or nil, err(invalid).
local function new_state(a)
  local flow = a.flow
  if REQUIRED[flow] == nil then
    return nil, errors.invalid(format("auth.flow %q is not one of %s", tostring(flow), concat(M.FLOWS, ", ")))
  end
  for _, name in ipairs(REQUIRED[flow]) do
    if a[name] == nil or a[name] == "" then
      return nil, errors.invalid(format("auth.%s is required for the %s flow", name, flow))
    end
  end
  local st = setmetatable({ flow = flow, renewals = 0 }, State)
  local sec = {}
  for _, name in ipairs(SECRET_FIELDS) do sec[name] = a[name] end
  if flow == "sf_cli" then
    local target = a.alias or a.username
    if type(target) ~= "string" or target == "" or byte(target) == 45 then -- "-"
      return nil, errors.invalid(
        "auth.alias (an org alias or username known to the Salesforce CLI) is required for the sf_cli flow")
    end
    st.alias = target
    st.cli = a.cli or "sf"
    cli_prefix(st.cli) -- raises now on a malformed auth.cli
  else
    local login, lerr = check_login_url(a.login_url or M.DEFAULT_LOGIN_URL)
    if not login then return nil, lerr end
    st.login_url = login
    st.username = a.username
    st.audience = a.audience
  end
  if flow == "jwt" then
    if a.private_key == nil and a.private_key_file == nil then
      return nil, errors.invalid("auth.private_key (PEM text) or auth.private_key_file is required for the jwt flow")
    end
    if sec.private_key == nil then
      local pem, why = read_file(a.private_key_file)
      if not pem then
        return nil, errors.invalid(format("auth.private_key_file cannot be read: %s", tostring(why)))
      end
      sec.private_key = pem
    end
  end
  secrets[st] = sec
  return st
end

---------------------------------------------------------------------------
-- the token endpoint

local function url_encode(s)
  return (gsub(s, "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

-- Form body from an array of { name, value } (values nil are left out).
local function form(fields)
  local parts = {}
  for _, f in ipairs(fields) do
    if f[2] ~= nil then parts[#parts + 1] = f[1] .. "=" .. url_encode(f[2]) end
  end
  return concat(parts, "&")
end

local FORM_HEADERS = { ["Content-Type"] = "application/x-www-form-urlencoded" }

-- The transport for the token request: the client's own once it exists, else (during
-- construction) a short-lived one of the same kind (cosockets in nginx) for login_url.
local function token_transport(client, st)
  if client.transport then return client.transport end
  local o = client._opts or {}
  local t, err = require("sfreports.transport").new({
    base_url = st.login_url, timeout = o.timeout, connect_timeout = o.connect_timeout,
    stall_timeout = o.stall_timeout, cafile = o.cafile, capath = o.capath, verify = o.verify,
    proxy = o.proxy, user_agent = o.user_agent,
  }, o.transport)
  if not t then return nil, err end
  return t, true
end

-- POSTs a grant to the token endpoint. Returns the decoded answer (with access_token),
-- or nil and an error: `auth` (with the endpoint's error_description) when the endpoint
-- refused; network, timeout, limit and 5xx errors keep their kind (they may be retried).
local function token_request(client, st, body)
  local t, temporary = token_transport(client, st)
  if not t then return nil, temporary end
  local value, meta = t:request("POST", st.login_url .. M.TOKEN_PATH, body, FORM_HEADERS)
  if temporary then t:close() end
  if value == nil then
    -- failures that say nothing about the credentials keep their kind, so that the
    -- retry policy can try again (network, timeout, rate limits, 5xx)
    if meta.kind == "network" or meta.kind == "timeout" or meta.kind == "limit"
        or (meta.status and meta.status >= 500) then
      meta.message = scrub(st, meta.message)
      return nil, meta
    end
    return nil, auth_error(st, meta.message, { status = meta.status, code = meta.code })
  end
  if type(value) ~= "table" or type(value.access_token) ~= "string" or value.access_token == "" then
    return nil, auth_error(st, "the token endpoint answered without an access_token",
      { status = meta and meta.status })
  end
  return value
end

local function jwt_assertion(st, sec)
  local header = core.base64url('{"alg":"RS256"}')
  local claims = core.base64url(json.encode({
    iss = sec.client_id, sub = st.username, aud = st.audience or st.login_url,
    exp = os.time() + M.JWT_LIFETIME,
  }))
  local signing_input = header .. "." .. claims
  local sig, err = core.sign_rs256(sec.private_key, signing_input)
  if not sig then return nil, auth_error(st, "jwt flow: " .. tostring(err.message)) end
  return signing_input .. "." .. sig
end

-- The grant's form body, or nil and an error.
local function grant_body(st, sec)
  local flow = st.flow
  if flow == "refresh_token" then
    return form({ { "grant_type", "refresh_token" }, { "refresh_token", sec.refresh_token },
      { "client_id", sec.client_id }, { "client_secret", sec.client_secret }, { "format", "json" } })
  elseif flow == "client_credentials" then
    return form({ { "grant_type", "client_credentials" }, { "client_id", sec.client_id },
      { "client_secret", sec.client_secret } })
  elseif flow == "password" then
    return form({ { "grant_type", "password" }, { "client_id", sec.client_id },
      { "client_secret", sec.client_secret }, { "username", st.username }, { "password", sec.password } })
  end
  local assertion, err = jwt_assertion(st, sec)
  if not assertion then return nil, err end
  return form({ { "grant_type", JWT_GRANT }, { "assertion", assertion } })
end

-- A token from the OAuth endpoint: token, info | nil, err.
local function oauth_token(client, st)
  local sec = secrets[st]
  local body, berr = grant_body(st, sec)
  if not body then return nil, berr end
  local answer, err = token_request(client, st, body)
  if not answer then return nil, err end
  local info = { flow = st.flow, instance_url = answer.instance_url, issued_at = answer.issued_at }
  -- refresh token rotation: the old one is now invalid, keep the new one
  if type(answer.refresh_token) == "string" and answer.refresh_token ~= "" then
    if st.flow == "refresh_token" then sec.refresh_token = answer.refresh_token end
    info.refresh_token = answer.refresh_token
  end
  return answer.access_token, info
end

---------------------------------------------------------------------------
-- the Salesforce CLI

local function shell_quote(s)
  return "'" .. gsub(s, "'", "'\\''") .. "'"
end

-- The command words: cli is a command name/path or an array of words (e.g.
-- {"npx", "@salesforce/cli"}); each is quoted for the shell.
function cli_prefix(cli)
  if type(cli) == "string" then return shell_quote(cli) end
  local words = {}
  for i, w in ipairs(cli) do
    if type(w) ~= "string" then error("sfreports: auth.cli words must be strings", 5) end
    words[i] = shell_quote(w)
  end
  if #words == 0 then error("sfreports: auth.cli must not be empty", 5) end
  return concat(words, " ")
end

local function first_line(s)
  s = match(s or "", "^%s*([^\r\n]*)") or ""
  if #s > 200 then s = sub(s, 1, 200) .. "..." end
  return s
end

-- Runs `<cli> args... --json`. Returns the decoded envelope, exit status, stderr text.
-- stdout (which carries the token) is read through the pipe and never written to disk.
local function run_cli(st, args)
  local words = {}
  for i, a in ipairs(args) do words[i] = shell_quote(a) end
  local errfile = os.tmpname()
  local cmd = format('%s %s --json 2>%s; echo "::rc=$?"', cli_prefix(st.cli), concat(words, " "),
    shell_quote(errfile))
  local p = io.popen(cmd, "r")
  local out = p and p:read("*a") or ""
  if p then p:close() end
  local stderr = read_file(errfile) or ""
  os.remove(errfile)
  local rc = tonumber(match(out, "::rc=(%d+)%s*$")) or -1
  out = gsub(out, "::rc=%d+%s*$", "")
  local doc = core.decode(out)
  if type(doc) ~= "table" then
    -- newer CLIs print a --json error on stderr
    doc = core.decode(stderr)
    if type(doc) ~= "table" then doc = nil end
  end
  return doc, rc, stderr
end

local function cli_failure(st, what, doc, rc, stderr)
  local why = doc and type(doc.message) == "string" and doc.message or first_line(stderr)
  if why == "" then why = "exit status " .. rc end
  local name = doc and type(doc.name) == "string" and doc.name or nil
  local hint = ""
  if name == "NamedOrgNotFoundError" or name == "NoAuthInfoFound" or find(why, "No authorization", 1, true) then
    hint = format(" (log in with `sf org login web --alias %s`)", st.alias)
  end
  return auth_error(st, format("Salesforce CLI: `%s` for %q failed: %s%s", what, st.alias, why, hint),
    { code = name })
end

local function redacted(token)
  return type(token) ~= "string" or token == "" or find(token, "[REDACTED]", 1, true) ~= nil
end

-- A token from the CLI: token, info | nil, err. `sf org display` refreshes the stored
-- login and gives the instance URL; the token comes from `sf org auth show-access-token`,
-- or from display on CLIs too old to have that command (they do not redact it).
local function cli_token(st)
  local doc, rc, stderr = run_cli(st, { "org", "display", "--target-org", st.alias })
  if rc == 127 or rc == 126 then
    return nil, auth_error(st, format(
      "the Salesforce CLI (%s) was not found or cannot run: install @salesforce/cli or set auth.cli",
      type(st.cli) == "string" and st.cli or concat(st.cli, " ")))
  end
  local result = doc and doc.status == 0 and type(doc.result) == "table" and doc.result or nil
  if rc ~= 0 or not result then return nil, cli_failure(st, "sf org display", doc, rc, stderr) end
  local token = result.accessToken
  local sdoc, src, serr = run_cli(st, { "org", "auth", "show-access-token", "--target-org", st.alias })
  local sresult = sdoc and sdoc.status == 0 and type(sdoc.result) == "table" and sdoc.result or nil
  if src == 0 and sresult then
    token = sresult.accessToken
  elseif redacted(token) then
    return nil, cli_failure(st, "sf org auth show-access-token", sdoc, src, serr)
  end
  if redacted(token) then
    return nil, auth_error(st, format("Salesforce CLI: the access token of %q came back redacted; "
      .. "update the CLI so that `sf org auth show-access-token` is available", st.alias))
  end
  if type(result.instanceUrl) ~= "string" then
    return nil, auth_error(st, format("Salesforce CLI: `sf org display` gave no instanceUrl for %q", st.alias))
  end
  return token, { flow = "sf_cli", instance_url = result.instanceUrl }
end

---------------------------------------------------------------------------
-- attach and renew

local function fetch(client, st)
  if st.flow == "sf_cli" then return cli_token(st) end
  return oauth_token(client, st)
end

local function notify(client, token, info)
  local hook = client._opts and client._opts.on_token
  if hook then hook(token, info) end
end

-- Called by sfreports.new when opts.auth is given: checks the options, gets the first
-- token and the instance URL (opts.instance_url or auth.instance_url win over the one the
-- flow reports). Sets client._auth, client._token and client.instance_url. Returns true,
-- or nil and an error (invalid, auth, network, timeout). Raises on unknown options.
function M.attach(client, opts)
  local a = opts.auth
  check_auth_options(a)
  local st, err = new_state(a)
  if not st then return nil, err end
  client._opts = without_secrets(opts)
  client._auth = st
  local token, info = fetch(client, st)
  if not token then return nil, info end
  local url, uerr = require("sfreports.client").check_instance_url(
    opts.instance_url or a.instance_url or info.instance_url)
  if not url then return nil, uerr end
  secrets[st].token = token
  client.instance_url = url
  info.instance_url = url
  client._token = token -- seeds the transport (sfreports.client opens it next)
  notify(client, token, info)
  return true
end

-- Waits (in nginx, where other light threads run meanwhile) for a renewal already in
-- progress on this client; blocking callers never get here while one is in progress.
local function wait_renewal(client, st, generation)
  local ngx = rawget(_G, "ngx")
  while st.renewing and ngx and ngx.sleep do ngx.sleep(0.005) end
  if client._token_generation ~= generation then return true end
  return nil, st.renew_error or auth_error(st, "token renewal failed")
end

-- Gets a new token with the client's flow and puts it on the transport. Returns true, or
-- nil and an error (`auth` with the endpoint's or CLI's reason, or network/timeout).
function M.renew(client)
  local st = client._auth
  if st == nil then return nil, errors.new("auth", "this client cannot renew its token") end
  local generation = client._token_generation
  if st.renewing then return wait_renewal(client, st, generation) end
  st.renewing = true
  local ok, token, info = pcall(fetch, client, st)
  st.renewing = false
  if not ok then error(token, 0) end
  if not token then
    st.renew_error = info
    return nil, info
  end
  st.renew_error = nil
  secrets[st].token = token
  st.renewals = st.renewals + 1
  client._token_generation = generation + 1
  client.transport:set_token(token)
  -- only the transport needs the token now; the client table keeps no copy
  client._token = nil
  info.instance_url = client.instance_url
  notify(client, token, info)
  return true
end

-- For diagnostics: the flow and how many renewals happened (never a secret).
function M.describe(client)
  local st = client._auth
  if not st then return nil end
  return { flow = st.flow, login_url = st.login_url, alias = st.alias, renewals = st.renewals }
end

return M
