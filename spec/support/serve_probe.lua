-- luacheck: globals ngx
-- spec/support/serve_probe.lua: the handlers spec/serve_spec.lua runs in a real nginx
-- (4 workers): sfreports.serve with the options of each location, and test helpers
-- (a refresh lock left by a "dead" refresher, the key of a location's report).
local serve = require "sfreports.serve"
local F = require "sfreports.filters"

local M = {}

local STAGES = { Prospecting = true, ["Closed Won"] = true, Negotiation = true }

M.OPTS = {
  cold = { max_age = 60, wait = 30 },
  short = { max_age = 1, stale = 3600, lock_ttl = 30 },
  busy = { max_age = 60, wait = 0.3 },
  tiny = { dict = "tiny", max_age = 60 },
  json = { max_age = 60, format = "json" },
  async = { max_age = 60, async = true, timeout = 20 },
  allow = { max_age = 60, allow = {
    stage = function(v)
      if not STAGES[v] then return nil, "unknown stage" end
      return { filters = F.eq("STAGE_NAME", v) }
    end,
    raw = function(v) return { raw = v == "1" } end,
  } },
}

M.OPTS.warm = { max_age = 60 }
M.WARM_ID = "00OFk00000B0001MAB" -- summary_1

-- init_worker: keep summary_1 warm (serve.schedule; one worker runs it, by the lock).
function M.warm()
  assert(serve.schedule({ reports = { { M.WARM_ID, max_age = 60 } }, every = 1 }))
end

function M.handle(loc)
  return serve.report(ngx.var.report_id, M.OPTS[loc])
end

-- /lock?loc=..&id=..&ttl=..: a refresh lock as a refresher that died would leave it.
function M.lock()
  local args = ngx.req.get_uri_args()
  local opts = M.OPTS[args.loc]
  local key = serve.key(args.id, opts)
  local ok = ngx.shared[opts.dict or "sfreports"]:add("l:" .. key, "dead", tonumber(args.ttl))
  ngx.say(ok and "locked" or "held")
end

function M.purge()
  local args = ngx.req.get_uri_args()
  serve.purge(args.id, M.OPTS[args.loc])
  ngx.say("purged")
end

return M
