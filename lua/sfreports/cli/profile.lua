-- sfreports.cli.profile: named orgs in a small config file, for --profile NAME (or
-- SFREPORTS_PROFILE): $XDG_CONFIG_HOME/sfreports/config, else ~/.config/sfreports/config.
--
--   # comments start with # or ;
--   [prod]
--   flow = sf_cli                      # a Salesforce CLI login
--   alias = acme-prod
--
--   [ci]
--   flow = client_credentials          # or refresh_token, password, jwt
--   login_url = https://acme.my.salesforce.com
--   client_id = 3MVG9...
--   client_secret_env = CI_CLIENT_SECRET    # the secret comes from this variable
--
--   [sandbox]
--   flow = token                       # an access token from the environment
--   instance_url = https://acme--dev.sandbox.my.salesforce.com
--   access_token_env = SANDBOX_TOKEN   # (default SF_ACCESS_TOKEN)
--   api_version = 61.0
--
-- Secrets (client_secret, refresh_token, password, private_key, access_token) are never
-- read from the file itself unless the profile says `plaintext_secrets = yes`, and even
-- then not from a file that others can read (its mode must deny group and other: chmod
-- 600). Give NAME_env = VARIABLE (the environment) or NAME_file = PATH (a file holding
-- only the secret, also not readable by others) instead; jwt takes private_key_file.
-- profile.client_options(session, name) -> options for sfreports.new | nil, message.
local type, pairs, ipairs, tonumber = type, pairs, ipairs, tonumber
local format, match, gsub, sub, concat = string.format, string.match, string.gsub, string.sub, table.concat

local profile = {}

-- The keys a profile may hold (besides the secrets and their _env/_file forms).
local PLAIN = { flow = true, instance_url = true, login_url = true, alias = true, username = true,
  client_id = true, audience = true, private_key_file = true, api_version = true, plaintext_secrets = true }
local SECRETS = { "client_secret", "refresh_token", "password", "private_key", "access_token" }
local FLOWS = { sf_cli = true, refresh_token = true, client_credentials = true, password = true, jwt = true,
  token = true }

-- The config file's path from the environment (getenv), or nil without HOME.
function profile.path(getenv)
  local xdg = getenv("XDG_CONFIG_HOME")
  if type(xdg) == "string" and sub(xdg, 1, 1) == "/" then return xdg .. "/sfreports/config" end
  local home = getenv("HOME")
  if type(home) == "string" and home ~= "" then return home .. "/.config/sfreports/config" end
  return nil
end

-- Parses the text of a config file: { [name] = { key = value }, order = { names } }, or
-- nil and a message naming the line.
function profile.parse(text, path)
  local profiles, order, current = {}, {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = match(line, "^%s*(.-)%s*\r?$")
    if line == "" or match(line, "^[#;]") then -- luacheck: ignore 542
    elseif match(line, "^%[") then
      local name = match(line, "^%[%s*([%w_%.%-]+)%s*%]$")
      if not name then return nil, format("%s:%d: a profile name is [NAME] (letters, digits, _ . -)", path, n) end
      if profiles[name] then return nil, format("%s:%d: profile [%s] is defined twice", path, n, name) end
      current = { _line = n }
      profiles[name], order[#order + 1] = current, name
    else
      local k, v = match(line, "^([%w_]+)%s*=%s*(.-)$")
      if not k then return nil, format("%s:%d: expected KEY = VALUE", path, n) end
      if not current then return nil, format("%s:%d: %s is outside a [profile]", path, n, k) end
      v = gsub(v, "%s+[#;].*$", "")
      v = match(v, '^"(.*)"$') or match(v, "^'(.*)'$") or v
      current[k] = v
    end
  end
  return { profiles = profiles, order = order }
end

-- The permission bits of a file ("600"), asking stat(1) (Lua has no stat); nil if unknown.
local function mode_of(path)
  local p = io.popen("stat -L -c %a -- '" .. gsub(path, "'", "'\\''") .. "' 2>/dev/null")
  if not p then return nil end
  local m = p:read("*l")
  p:close()
  return m and match(m, "^%d+$") and m or nil
end

-- True when group or others may read the file (a mode we cannot tell counts as readable).
local function readable_by_others(path)
  local m = mode_of(path)
  if not m then return true end
  local g, o = tonumber(sub(m, -2, -2)) or 7, tonumber(sub(m, -1)) or 7
  return g % 8 >= 4 or o % 8 >= 4
end
profile.readable_by_others = readable_by_others

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function expand(path, getenv)
  if sub(path, 1, 2) == "~/" then
    local home = getenv("HOME")
    if type(home) == "string" then return home .. sub(path, 2) end
  end
  return path
end

-- The secret `name` of profile p: from NAME_env, NAME_file, or (opted in) NAME. Returns
-- value | nil, or false and a message.
local function secret(p, name, where, path, getenv)
  if p[name .. "_env"] then
    local v = getenv(p[name .. "_env"])
    if type(v) ~= "string" or v == "" then
      return false, format("%s: %s_env names %s, which is not set", where, name, p[name .. "_env"])
    end
    return (match(v, "^%s*(.-)%s*$"))
  end
  if p[name .. "_file"] then
    local file = expand(p[name .. "_file"], getenv)
    local v = read_all(file)
    if not v then return false, format("%s: cannot read %s_file %s", where, name, file) end
    if readable_by_others(file) then
      return false, format("%s: %s_file %s can be read by others: chmod 600 %s", where, name, file, file)
    end
    return (match(v, "^%s*(.-)%s*$"))
  end
  if p[name] then
    if p.plaintext_secrets ~= "yes" and p.plaintext_secrets ~= "true" then
      return false, format("%s holds %s in plain text: give %s_env = VARIABLE or %s_file = PATH instead"
        .. " (or opt in with plaintext_secrets = yes, in a file only you can read)", where, name, name, name)
    end
    if readable_by_others(path) then
      return false, format("%s holds %s in plain text and %s can be read by others: chmod 600 %s",
        where, name, path, path)
    end
    return p[name]
  end
  return nil
end

-- The options of sfreports.new for profile `name`, added to opts (the command line's).
-- Returns opts, or nil and a message. session: for getenv and add_secret.
function profile.client_options(session, name, opts)
  local getenv = session.getenv
  local path = profile.path(getenv)
  if not path then return nil, "--profile: neither XDG_CONFIG_HOME nor HOME is set, so there is no config file" end
  local text = read_all(path)
  if not text then
    return nil, format("profile %q: cannot read %s (profiles: see `sfreports --help`)", name, path)
  end
  local conf, perr = profile.parse(text, path)
  if not conf then return nil, perr end
  local p = conf.profiles[name]
  if not p then
    return nil, format("no profile [%s] in %s; it has %s", name, path,
      #conf.order > 0 and concat(conf.order, ", ") or "none")
  end
  local where = format("%s, profile [%s]", path, name)
  for k in pairs(p) do
    local base = match(k, "^(.-)_env$") or match(k, "^(.-)_file$") or k
    local known = PLAIN[k] or k == "_line"
    for _, s in ipairs(SECRETS) do known = known or base == s end
    if not known then return nil, format("%s: unknown key %s", where, k) end
  end
  local flow = p.flow or "sf_cli"
  if not FLOWS[flow] then
    return nil, format("%s: flow %q is not one of sf_cli, token, refresh_token, client_credentials, password, jwt",
      where, flow)
  end
  local values = {}
  for _, s in ipairs(SECRETS) do
    local v, err = secret(p, s, where, path, getenv)
    if v == false then return nil, err end
    if v then
      values[s] = v
      session:add_secret(v)
    end
  end
  if p.api_version and not opts.api_version then opts.api_version = p.api_version end
  if flow == "token" then
    local token = values.access_token or getenv("SF_ACCESS_TOKEN")
    if type(token) ~= "string" or token == "" then
      return nil, format("%s: flow token needs access_token_env = VARIABLE (or SF_ACCESS_TOKEN)", where)
    end
    if not p.instance_url then return nil, format("%s: flow token needs instance_url", where) end
    opts.instance_url, opts.access_token = p.instance_url, token
    session:add_secret(token)
    return opts
  end
  local auth = { flow = flow }
  for _, k in ipairs({ "login_url", "alias", "username", "client_id", "audience" }) do auth[k] = p[k] end
  if p.private_key_file then auth.private_key_file = expand(p.private_key_file, getenv) end
  for _, s in ipairs({ "client_secret", "refresh_token", "password", "private_key" }) do auth[s] = values[s] end
  if flow == "sf_cli" and not auth.alias and not auth.username then auth.alias = name end
  if p.instance_url then opts.instance_url = p.instance_url end
  opts.auth = auth
  return opts
end

return profile
