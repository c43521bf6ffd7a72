-- fakeorg.control: the unauthenticated test-control API under /__fake/
-- (config, tokens, faults, reset, stats, ping). See fakeorg/README.md.
local util = require "fakeorg.util"
local state = require "fakeorg.state"
local out = require "fakeorg.out"
local faults = require "fakeorg.faults"
local oauth = require "fakeorg.oauth"
local reports = require "fakeorg.reports"
local data = require "fakeorg.data"
local catalog = require "fakeorg.catalog"

local ngx = ngx

local control = {}

local function body_table()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body or body:match("^%s*$") then return {} end
  local value = util.decode(body)
  if type(value) ~= "table" then return nil end
  return value
end

local function fail(message)
  return out.json(400, { ok = false, error = message })
end

local function config(method)
  if method == "POST" then
    local body = body_table()
    if not body then return fail("body must be a JSON object") end
    for key, value in pairs(body) do
      if key == "token" then
        if type(value) ~= "string" or value == "" then return fail("token must be a non-empty string") end
        state.add_token(value)
      else
        local ok, err = state.set_config(key, value)
        if not ok then return fail(err) end
      end
    end
  end
  return out.json(200, { ok = true, config = state.all_config() })
end

local function fault()
  local body = body_table()
  if not body then return fail("body must be a JSON object") end
  if not faults.KINDS[body.kind] then return fail("unknown fault kind " .. tostring(body.kind)) end
  local count = body.count == nil and 1 or body.count
  if type(count) ~= "number" or count < 1 then return fail("count must be a positive number") end
  if body.path ~= nil and (type(body.path) ~= "string" or not pcall(string.find, "", body.path)) then
    return fail("path must be a Lua pattern")
  end
  if body.match ~= nil and (type(body.match) ~= "string" or not pcall(string.find, "", body.match)) then
    return fail("match must be a Lua pattern")
  end
  if body.kind == "body" and type(body.body) ~= "string" then return fail("body must be a string") end
  local def = { kind = body.kind, count = math.floor(count), path = body.path, match = body.match,
    seconds = body.seconds, bytes = body.bytes, after = tonumber(body.after), body = body.body }
  return out.json(200, { ok = true, id = state.add_fault(def) })
end

-- POST: the credentials the OAuth token endpoint accepts (see fakeorg.oauth.configure);
-- GET: which fields are configured (never their values).
local function oauth_config(method)
  if method == "POST" then
    local body = body_table()
    if not body then return fail("body must be a JSON object") end
    local ok, err = oauth.configure(body)
    if not ok then return fail(err) end
  end
  return out.json(200, { ok = true, oauth = oauth.summary() })
end

-- The changes made to a catalog report's data set (POST /__fake/data), shared by the
-- workers; a reset forgets them.
local function changes_key(seed) return "datachg:" .. seed end

data.changes_of = function(seed)
  local text = ngx.shared.fakeorg_state:get(changes_key(seed))
  return text and util.decode(text) or nil
end

-- POST {"report": key or id, "add": n, "add_close_date": "YYYY-MM-DD", "remove_every": k}:
-- the report's rows become the generated ones without every k-th (by position), plus n
-- more records (close date add_close_date when given). Each POST replaces the last.
local function data_changes()
  local body = body_table()
  if not body then return fail("body must be a JSON object") end
  local report = type(body.report) == "string" and (catalog.by_key[body.report] or catalog.find(body.report))
  if not report or not report.seed then return fail("report must name a catalog report") end
  for _, k in ipairs({ "add", "remove_every" }) do
    local v = body[k]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v ~= math.floor(v)) then
      return fail(k .. " must be a non-negative integer")
    end
  end
  local date = body.add_close_date
  if date ~= nil and (type(date) ~= "string" or not date:match("^%d%d%d%d%-%d%d%-%d%d$")) then
    return fail("add_close_date must be YYYY-MM-DD")
  end
  local d = ngx.shared.fakeorg_state
  -- unique across resets (a worker's cached variant must never be taken for a new one)
  local version = tostring(d:get("epoch") or 0) .. "." .. tostring(d:incr("datachg_version", 1, 0))
  d:set(changes_key(report.seed), util.encode({ version = version, add = body.add or 0,
    add_close_date = date, remove_every = body.remove_every or 0 }))
  return out.json(200, { ok = true, version = version })
end

local ROUTES = {
  ["/__fake/data"] = data_changes,
  ["/__fake/ping"] = function() return out.json(200, { ok = true }) end,
  ["/__fake/config"] = config,
  ["/__fake/fault"] = fault,
  ["/__fake/oauth"] = oauth_config,
  ["/__fake/stats"] = function() return out.json(200, state.stats()) end,
  -- the API requests seen (method, uri, body text), oldest first: the exact JSON clients sent
  ["/__fake/bodies"] = function() return out.json(200, reports.bodies()) end,
  ["/__fake/expire_tokens"] = function()
    state.expire_tokens()
    return out.json(200, { ok = true })
  end,
  ["/__fake/mint_token"] = function() return out.json(200, { ok = true, token = state.mint_token() }) end,
  ["/__fake/reset"] = function()
    state.reset()
    return out.json(200, { ok = true })
  end,
}

function control.handle()
  local route = ROUTES[ngx.var.uri]
  if not route then return out.json(404, { ok = false, error = "unknown control endpoint" }) end
  return route(ngx.req.get_method())
end

return control
