-- sfreports.auth: where a client's access token comes from, and how it is renewed.
--   OAuth 2.0 token endpoint flows: refresh_token, client_credentials, password, and jwt
--   (an RS256 assertion signed by the C core), against login, test or a My Domain URL;
--   sf_cli: the Salesforce CLI's stored login (`sf org display` for the instance URL,
--   `sf org auth show-access-token` for the token, which newer CLIs redact in `display`).
-- M.new(auth_opts, conn) makes a flow; flow:fetch(transport?) returns a token and what
-- the flow learnt (instance URL...). It never writes anyone else's state: the caller
-- (sfreports.client) puts the token on its transport. Secrets (client secret, refresh
-- token, password, private key, access tokens) live in a private weak table keyed by
-- the flow, and every one is added to the caller's secrets bag (sfreports.secrets), so
-- neither an error, tostring() nor a dump of the client shows them.
local core = require "sfreports.core"
local errors = require "sfreports.errors"
local json = require "sfreports.json"
local options = require "sfreports.options"
local transport = require "sfreports.transport"

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

-- Masks every secret the flow's bag holds (its own and the client's) in s.
local function scrub(st, s)
  return st.bag:scrub(s)
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
  local ok, err = options.instance_url(origin)
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

local cli_prefix -- defined with the CLI helpers below

-- Builds the auth state and its private secrets. Returns state, or nil, err(invalid).
local function new_state(a, bag)
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
  st.bag = bag
  for _, v in pairs(sec) do bag:add(v) end
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

-- The transport for the token request: the caller's own once it exists, else (while the
-- client is being built) a short-lived one of the same kind (cosockets in nginx) for
-- login_url, with the client's connection options.
local function token_transport(st, t)
  if t then return t end
  local o = st.conn
  local tt, err = transport.new({
    base_url = st.login_url, timeout = o.timeout, connect_timeout = o.connect_timeout,
    stall_timeout = o.stall_timeout, cafile = o.cafile, capath = o.capath, verify = o.verify,
    proxy = o.proxy, user_agent = o.user_agent,
  }, o.transport)
  if not tt then return nil, err end
  return tt, true
end

-- POSTs a grant to the token endpoint. Returns the decoded answer (with access_token),
-- or nil and an error: `auth` (with the endpoint's error_description) when the endpoint
-- refused; network, timeout, limit and 5xx errors keep their kind (they may be retried).
local function token_request(st, t0, body, timeout)
  local t, temporary = token_transport(st, t0)
  if not t then return nil, temporary end
  local started = core.monotime()
  local value, meta = t:request("POST", st.login_url .. M.TOKEN_PATH, body, FORM_HEADERS,
    timeout and { timeout = timeout } or nil)
  if temporary then t:close() end
  -- the exchange is shown to the client's observer (never its body: the form)
  if st.observe then st.observe("POST", value, meta, started) end
  if value == nil then
    -- failures that say nothing about the credentials keep their kind, so that the
    -- retry policy can try again (network, timeout, rate limits, 5xx)
    if meta.kind == "network" or meta.kind == "timeout" or meta.kind == "limit"
        or (meta.status and meta.status >= 500) then
      return nil, st.bag:scrub_error(meta)
    end
    return nil, auth_error(st, meta.message, { status = meta.status, code = scrub(st, meta.code) })
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
  st.bag:add(assertion)
  return form({ { "grant_type", JWT_GRANT }, { "assertion", assertion } })
end

-- A token from the OAuth endpoint: token, info | nil, err.
local function oauth_token(st, t, timeout)
  local sec = secrets[st]
  local body, berr = grant_body(st, sec)
  if not body then return nil, berr end
  st.bag:add(body) -- the form holds the assertion (jwt) and every secret, encoded
  local answer, err = token_request(st, t, body, timeout)
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

-- A token answer is written into an Authorization header: one with a space or control
-- character would end or split it, so it is an `auth` error here, before any use.
local function checked_token(st, token, info)
  if not token then return nil, info end
  if type(token) ~= "string" or token == "" or find(token, "[%c%s]") then
    return nil, auth_error(st, "the token endpoint answered with an access_token that is not a valid token "
      .. "(empty, or holding spaces or control characters)")
  end
  st.bag:add(token)
  if info.refresh_token then st.bag:add(info.refresh_token) end
  return token, info
end

---------------------------------------------------------------------------
-- the flow object

-- Makes a flow from the `auth` option. conn: the client's connection options (timeout,
-- connect_timeout, stall_timeout, cafile, capath, verify, proxy, user_agent, transport)
-- for the token endpoint; bag: the client's sfreports.secrets bag, which receives every
-- secret and token. observe, when given, is called after each token request with
-- (method, value, meta | nil, err, started) (sfreports.observe counts and shows it).
-- Returns the flow, or nil and an `invalid` error; raises on misuse.
function M.new(a, conn, bag, observe)
  if type(a) ~= "table" then error("sfreports: option 'auth' must be a table", 3) end
  check_auth_options(a)
  local st, err = new_state(a, bag)
  if not st then return nil, err end
  st.conn = conn or {}
  st.observe = observe
  return st
end

-- Gets a token with the flow: token, info ({ flow, instance_url, issued_at?,
-- refresh_token? }) or nil and an error (`auth` with the endpoint's or CLI's reason, or
-- network/timeout, which the caller's retry policy may try again). t: the transport to
-- send the grant with (nil while the client is being built); timeout: at most this long.
function State:fetch(t, timeout)
  local token, info
  if self.flow == "sf_cli" then
    token, info = cli_token(self)
  else
    token, info = oauth_token(self, t, timeout)
  end
  token, info = checked_token(self, token, info)
  if token then self.renewals = self.renewals + 1 end
  return token, info
end

-- For diagnostics: the flow and how many tokens it fetched after the first (never a secret).
function State:describe()
  return { flow = self.flow, login_url = self.login_url, alias = self.alias,
    renewals = self.renewals > 0 and self.renewals - 1 or 0 }
end

return M
