-- examples/example_org.lua: the org the async examples run on (a helper of the examples,
-- not part of the library).
--
--   local client, ids, org = require("example_org").connect("examples/x.lua", opts, ...)
--
-- With SF_INSTANCE_URL set: a client from the environment (sfreports.from_env(opts)) and
-- the report ids given on the command line (none: a usage message, exit 2; a failure to
-- connect: a message, exit 1). Otherwise: the bundled fake org, started here (instances
-- there take 1 s, or SFREPORTS_FAKE_DELAY seconds), a client on it with opts, and three
-- of its reports; org is that fake org (org:stop() when done).
local sfreports = require "sfreports"

local M = {}

function M.connect(name, opts, ...)
  if os.getenv("SF_INSTANCE_URL") then
    if select("#", ...) == 0 then
      -- a real org: which reports to run is the caller's choice
      io.stderr:write("usage: ", (arg and arg[0]) or name, " REPORT_ID [REPORT_ID ...]\n",
        "  (with SF_INSTANCE_URL set, give the ids of reports of that org; unset it to use the bundled fake org)\n")
      os.exit(2)
    end
    local client, err = sfreports.from_env(opts)
    if not client then
      io.stderr:write("cannot connect: ", tostring(err and err.message or err), "\n")
      os.exit(1)
    end
    return client, { ... }
  end
  local fakeorg = require "fakeorg"
  local org = fakeorg.start({})
  org:control("config", { async_delay = tonumber(os.getenv("SFREPORTS_FAKE_DELAY")) or 1 })
  local R = fakeorg.reports
  local o = { instance_url = org.url, access_token = org.token }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(sfreports.new(o)), { R.tabular_small.id, R.summary_1.id, R.matrix.id }, org
end

return M
