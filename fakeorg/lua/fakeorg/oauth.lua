-- fakeorg.oauth: POST /services/oauth2/token. Every supported grant mints a new valid
-- access token (00DFAKE!fake-minted-token-N); refresh token "invalid" is rejected.
local util = require "fakeorg.util"
local state = require "fakeorg.state"
local out = require "fakeorg.out"
local data = require "fakeorg.data"

local ngx = ngx

local oauth = {}

local GRANTS = {
  refresh_token = "refresh_token", password = "password", client_credentials = "client_credentials",
  authorization_code = "code", ["urn:ietf:params:oauth:grant-type:jwt-bearer"] = "assertion",
}

local function fail(status, err, description)
  return out.send(status, util.encode({ error = err, error_description = description }))
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
  local token = state.mint_token()
  local base = ngx.var.scheme .. "://" .. ngx.var.http_host
  local issued = tostring(math.floor(ngx.now() * 1000))
  return out.json(200, {
    access_token = token, instance_url = base, token_type = "Bearer", issued_at = issued,
    id = "https://login.salesforce.com/id/00DFk0000000001AAA/" .. data.owners[1].id,
    signature = ngx.encode_base64(ngx.sha1_bin(token .. issued)), scope = "api refresh_token",
  })
end

return oauth
