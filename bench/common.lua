-- bench/common.lua: shared set-up of the benchmark contender scripts (loaded with dofile):
-- module paths of this checkout for the running interpreter, and a client from the
-- environment (SF_INSTANCE_URL / SF_ACCESS_TOKEN, as the CLI reads them).
-- SFREPORTS_BENCH_ROOT names another checkout whose lua/ and build/ to load instead of
-- this one's (bench/compare.lua runs the same scripts against two checkouts).
--   local common = dofile((arg[0]:match("^(.*)/") or ".") .. "/common.lua")
local common = {}

common.here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
common.root = os.getenv("SFREPORTS_BENCH_ROOT") or (common.here .. "/..")
common.runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

package.path = common.root .. "/lua/?.lua;" .. common.root .. "/lua/?/init.lua;"
  .. common.root .. "/spec/support/?.lua;" .. package.path
package.cpath = common.root .. "/build/" .. common.runtime .. "/?.so;" .. package.cpath

-- A client for the org named by the environment; raises (exits the bench) on failure.
function common.client(opts)
  local sfreports = require "sfreports"
  local o = { api_version = "60.0" }
  for k, v in pairs(opts or {}) do o[k] = v end
  local client, err = sfreports.from_env(o)
  if not client then error("bench: " .. tostring(err), 0) end
  return client
end

-- Writes one "key value" line per field on stderr, for the driver (bench/suite.lua).
function common.report(fields)
  for k, v in pairs(fields) do io.stderr:write("bench ", k, " ", tostring(v), "\n") end
end

return common
