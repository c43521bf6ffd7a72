-- fakeorg.oauth: POST /services/oauth2/token, and the control endpoint that says which
-- credentials it accepts (POST /__fake/oauth).
-- Unconfigured (the default, and after /__fake/reset), every supported grant mints a new
-- valid access token for any non-empty proof except "invalid". Once credentials are
-- configured, each grant checks them like a connected app would: client id and secret,
-- the refresh token (optionally rotated on every use), username and password, and for the
-- JWT bearer grant the RS256 signature (with the configured public key, via the C core's
-- verify_rs256) and the iss/sub/aud/exp claims.
local util = require "fakeorg.util"
local state = require "fakeorg.state"
local out = require "fakeorg.out"
local data = require "fakeorg.data"

local ngx = ngx
local type, tostring, floor = type, tostring, math.floor

local oauth = {}

local JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

local GRANTS = {
  -- grant -> the form field that carries its proof
  refresh_token = "refresh_token", password = "password", client_credentials = "client_secret",
  authorization_code = "code", [JWT_GRANT] = "assertion",
}

-- The longest an assertion may stay valid: a far-future exp (e.g. milliseconds given
-- where seconds are due) is refused, as Salesforce does.
local MAX_JWT_LIFETIME = 600

local CONFIG_FIELDS = {
  client_id = true, client_secret = true, refresh_token = true, username = true,
  password = true, public_key = true, audience = true, rotate_refresh = true, delay = true,
}

local function dict() return ngx.shared.fakeorg_state end

local function fail(status, err, description)
  return out.send(status, util.encode({ error = err, error_description = description }))
end

local function config()
  local s = dict():get("oauth:config")
  return s and util.decode(s) or nil
end

-- POST /__fake/oauth {client_id, client_secret, refresh_token, username, password,
-- public_key (PEM), audience, rotate_refresh, delay (seconds each token answer waits)}:
-- the credentials the token endpoint accepts from now on (replacing earlier ones).
-- Returns ok, or nil and a message.
function oauth.configure(body)
  for k, v in pairs(body) do
    if not CONFIG_FIELDS[k] then return nil, "unknown oauth field " .. tostring(k) end
    if k == "rotate_refresh" then
      if type(v) ~= "boolean" then return nil, "rotate_refresh must be a boolean" end
    elseif k == "delay" then
      if type(v) ~= "number" or v < 0 or v > 30 then return nil, "delay must be seconds between 0 and 30" end
    elseif type(v) ~= "string" or v == "" then
      return nil, k .. " must be a non-empty string"
    end
  end
  dict():set("oauth:config", util.encode(body))
  dict():set("oauth:refresh_token", body.refresh_token)
  return true
end

-- What the control endpoint shows: which fields are set, never their values.
function oauth.summary()
  local cfg = config()
  if not cfg then return { configured = false } end
  local set = {}
  for k in pairs(cfg) do set[#set + 1] = k end
  table.sort(set)
  return { configured = true, fields = set }
end

local function b64url_decode(s)
  s = s:gsub("-", "+"):gsub("_", "/")
  local pad = #s % 4
  if pad == 2 then s = s .. "==" elseif pad == 3 then s = s .. "=" elseif pad == 1 then return nil end
  return ngx.decode_base64(s)
end

local function decode_segment(seg)
  local raw = b64url_decode(seg)
  if not raw then return nil end
  local ok, v = pcall(util.decode, raw)
  if ok and type(v) == "table" then return v end
  return nil
end

-- Client authentication shared by the grants: nil when fine, else (err, description).
local function check_client(cfg, args, need_secret)
  if cfg.client_id and args.client_id ~= cfg.client_id then
    return "invalid_client_id", "client identifier invalid"
  end
  if cfg.client_secret and (need_secret or args.client_secret ~= nil)
      and args.client_secret ~= cfg.client_secret then
    return "invalid_client", "invalid client credentials"
  end
  return nil
end

-- The audiences an assertion may name: the configured one, else this server's own URL
-- and the production and sandbox login hosts.
local function audience_ok(cfg, aud, base)
  if cfg.audience then return aud == cfg.audience end
  return aud == base or aud == base .. "/" or aud == "https://login.salesforce.com"
    or aud == "https://test.salesforce.com"
end

local function check_jwt(cfg, assertion, base)
  if not cfg.public_key then return "invalid_grant", "no certificate is configured for the JWT bearer flow" end
  local h64, c64, s64 = assertion:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]+)$")
  if not h64 then return "invalid_grant", "invalid assertion" end
  local header, claims = decode_segment(h64), decode_segment(c64)
  if not header or not claims then return "invalid_grant", "invalid assertion" end
  if header.alg ~= "RS256" then return "invalid_grant", "invalid assertion: alg must be RS256" end
  local ok, core = pcall(require, "sfreports.core")
  if not ok then
    return "server_error", "the fake org cannot check signatures: build the C core for LuaJIT (make LUA=luajit)"
  end
  if not core.verify_rs256(cfg.public_key, h64 .. "." .. c64, s64) then
    return "invalid_grant", "invalid assertion: signature does not verify"
  end
  if cfg.client_id and claims.iss ~= cfg.client_id then return "invalid_client_id", "client identifier invalid" end
  if cfg.username and claims.sub ~= cfg.username then return "invalid_grant", "user hasn't approved this consumer" end
  if type(claims.aud) ~= "string" or not audience_ok(cfg, claims.aud, base) then
    return "invalid_grant", "audience is invalid"
  end
  local now = ngx.time()
  if type(claims.exp) ~= "number" or claims.exp <= now then return "invalid_grant", "expired assertion" end
  if claims.exp > now + MAX_JWT_LIFETIME then return "invalid_grant", "assertion expiry is too far in the future" end
  return nil
end

-- Checks a grant against the configured credentials. Returns nil when accepted, else the
-- OAuth error and description; the second result is a new refresh token to hand out.
local function check_grant(cfg, grant, args, base)
  if grant == "refresh_token" then
    local e, d = check_client(cfg, args, false)
    if e then return e, d end
    local current = dict():get("oauth:refresh_token")
    if current and args.refresh_token ~= current then return "invalid_grant", "expired access/refresh token" end
    if cfg.rotate_refresh then
      local fresh = ("5Aep861FAKE.refresh.%d"):format(state.next_seq())
      dict():set("oauth:refresh_token", fresh)
      return nil, nil, fresh
    end
  elseif grant == "client_credentials" then
    local e, d = check_client(cfg, args, true)
    if e then return e, d end
  elseif grant == "password" then
    local e, d = check_client(cfg, args, true)
    if e then return e, d end
    if (cfg.username and args.username ~= cfg.username) or (cfg.password and args.password ~= cfg.password) then
      return "invalid_grant", "authentication failure"
    end
  elseif grant == JWT_GRANT then
    return check_jwt(cfg, args.assertion, base)
  end
  return nil
end

function oauth.token()
  if ngx.req.get_method() ~= "POST" then
    return fail(405, "invalid_request", "must use HTTP POST")
  end
  ngx.req.read_body()
  local args = ngx.req.get_post_args() or {}
  local grant = args.grant_type
  local field = GRANTS[grant or ""]
  if not field then return fail(400, "unsupported_grant_type", "grant type not supported") end
  local proof = args[field]
  if type(proof) ~= "string" or proof == "" or proof == "invalid" then
    return fail(400, "invalid_grant", "expired access/refresh token")
  end
  local base = ngx.var.scheme .. "://" .. ngx.var.http_host
  local cfg = config()
  local new_refresh
  if cfg and cfg.delay then ngx.sleep(cfg.delay) end
  if cfg then
    local err, description, fresh = check_grant(cfg, grant, args, base)
    if err then return fail(err == "server_error" and 500 or 400, err, description) end
    new_refresh = fresh
  end
  local token = state.mint_token()
  local issued = tostring(floor(ngx.now() * 1000))
  return out.json(200, {
    access_token = token, instance_url = base, token_type = "Bearer", issued_at = issued,
    id = "https://login.salesforce.com/id/00DFk0000000001AAA/" .. data.owners[1].id,
    signature = ngx.encode_base64(ngx.sha1_bin(token .. issued)), scope = "api refresh_token",
    refresh_token = new_refresh,
  })
end

return oauth
