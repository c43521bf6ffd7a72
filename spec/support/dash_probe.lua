-- spec/support/dash_probe.lua: test-only handlers for spec/dashboards_nginx_spec.lua. They
-- use sfreports' dashboards inside nginx (cosockets, ngx.sleep) and answer with what
-- happened as JSON.
local sfreports = require "sfreports"
local cjson = require "cjson.safe"
local probe_http = require "probe_http"

local ngx = ngx -- luacheck: ignore 113 (nginx's global, this module runs only there)

local M = {}

local reply = probe_http.reply

local function err_fields(err)
  return err and { kind = err.kind, message = err.message, status = err.status, code = err.code } or nil
end

local function summary(d)
  local out = {}
  for i, c in ipairs(d.components) do
    out[i] = { id = c.id, label = c.label, rows = c.report and c.report:row_count() or cjson.null,
      total = c.report and c.report:total("RowCount") and c.report:total("RowCount").value or cjson.null,
      error = err_fields(c.error) }
  end
  return out
end

local function options()
  local args = ngx.req.get_uri_args()
  local opts = {}
  if args.region then opts.filters = { Region = args.region } end
  return args.id, opts
end

-- GET /dash/refresh?id=ID[&region=R]: refresh, wait with ngx.sleep, answer the components.
function M.refresh()
  local client = assert(sfreports.from_env())
  local id, opts = options()
  local h, err = client:refresh_dashboard(id, opts)
  if not h then return reply({ ok = false, err = err_fields(err) }) end
  local d, werr = h:wait({ timeout = 30 })
  if not d then return reply({ ok = false, err = err_fields(werr), polls = h.polls }) end
  return reply({ ok = true, engine = client.engine, polls = h.polls, already_running = h.already_running,
    components = summary(d) })
end

-- GET /dash/show?id=ID[&region=R]: the dashboard's components.
function M.show()
  local client = assert(sfreports.from_env())
  local id, opts = options()
  local d, err = client:dashboard(id, opts)
  if not d then return reply({ ok = false, err = err_fields(err) }) end
  return reply({ ok = true, engine = client.engine, selected = d.selected, components = summary(d) })
end

return M
