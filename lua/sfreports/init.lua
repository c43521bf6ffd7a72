-- sfreports: run Salesforce reports through the Reports and Dashboards REST API.
--   local sfreports = require "sfreports"
--   local client = assert(sfreports.new{ instance_url = ..., access_token = ... })
--   local report = assert(client:run_sync("00O..."))
--   for row in report:rows() do ... end
local core = require "sfreports.core"
local client = require "sfreports.client"

local M = {
  VERSION = core.VERSION,
  -- JSON null as decoded results carry it (lua-cjson's cjson.null).
  null = core.null,
  DEFAULT_API_VERSION = client.DEFAULT_API_VERSION,
}

M.new = client.new
M.from_env = client.from_env

-- Builds a report object from a decoded result (sync, instance, query, or a dashboard
-- component's reportResult).
function M.report(decoded)
  return require("sfreports.report").new(decoded)
end

M.errors = require "sfreports.errors"

return M
