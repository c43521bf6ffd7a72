-- examples/demo.lua: the main job end to end against the bundled fake org (`make demo`).
-- Starts the fake org, runs one report synchronously and one asynchronously, and prints
-- their rows as CSV. Against a real org, set SF_INSTANCE_URL and SF_ACCESS_TOKEN and use
-- sfreports.from_env() instead of the fake org.
local sfreports = require "sfreports"
local writers = require "sfreports.writers"

local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")
local root = here .. "/.."

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  local ok = p:close()
  return ok, (out:gsub("%s+$", ""))
end

local dir = os.getenv("SFREPORTS_DEMO_DIR") or os.tmpname()
os.remove(dir)
local ok, url = sh(("%q start %q"):format(root .. "/fakeorg/fakeorg", dir))
assert(ok and url:match("^http"), "could not start the fake org: " .. url)

local function run()
  local client = assert(sfreports.new({ instance_url = url, access_token = "00DFAKE!fake-access-token" }))

  local by_name = {}
  for _, r in ipairs(assert(client:list_reports())) do by_name[r.name] = r.id end

  local function show(title, report)
    io.stdout:write(("\n== %s: %s (%s), all data: %s\n"):format(title, report.name or "?",
      report.format, tostring(report.all_data)))
    assert(writers.csv(report, io.stdout))
  end

  local sync_id = assert(by_name["Small Tabular Pipeline"], "the fake org has no 'Small Tabular Pipeline' report")
  show("run synchronously", assert(client:run_sync(sync_id)))

  local async_id = assert(by_name["Pipeline by Stage"], "the fake org has no 'Pipeline by Stage' report")
  local instance = assert(client:run_async(async_id))
  io.stdout:write(("\n== started instance %s (status %s)\n"):format(instance.id, instance.status))
  show("run asynchronously", assert(instance:wait({ timeout = 60, delete = true })))
  client:close()
end

local okrun, err = pcall(run)
sh(("%q stop %q"):format(root .. "/fakeorg/fakeorg", dir))
if not okrun then
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
