-- readme_recipes_spec: the README's Lua recipes run as written against the fake org.
--
-- Convention (README.md): a fenced ```lua block right after a line
--
--   <!-- recipe report=summary_3 out="Sum of Amount" -->
--
-- is a recipe. This spec extracts it verbatim, runs it as a script in a child process
-- (the interpreter running the spec, the checkout's lua/ and build/) with SF_INSTANCE_URL
-- and SF_ACCESS_TOKEN naming a fake org, in a scratch directory, and asserts that it
-- exits 0 with nothing on stderr. Words of the marker:
--   report=NAME      the README's placeholder report id 00O5e000008abcdEAA stands for
--                    the fake org's report NAME (spec/support/fakeorg.lua: reports)
--   dashboard=NAME   the placeholder dashboard id 01Z5e000000abcdEAA stands for NAME
--                    (sales, team1..team6)
--   prelude          the block is a fragment of the README's first example: it runs after
--                    `sfreports`, `client`, `f`, `F`, `writers` and `id` are defined as there
--   out="TEXT"       TEXT (plain, not a pattern; \t is a tab) must appear on standard
--                    output; repeatable
-- Nothing else is changed in a recipe. Blocks without a marker are not run.
local fakeorg = require "fakeorg"

local cli_run = require "cli_run"

local ROOT, LUA = cli_run.ROOT, cli_run.LUA
local q = fakeorg.shell_quote
local read_file = fakeorg.read_file

local REPORT_PLACEHOLDER = "00O5e000008abcdEAA"
local DASHBOARD_PLACEHOLDER = "01Z5e000000abcdEAA"
local DASHBOARDS = { sales = "01ZFk00000G0001MAB" }
for i = 1, 6 do DASHBOARDS["team" .. i] = ("01ZFk00000G01%02dMAB"):format(i) end

local PRELUDE = table.concat({
  'local sfreports = require "sfreports"',
  'local f = require "sfreports.filters"',
  'local F = f',
  'local writers = require "sfreports.writers"',
  'local client = assert(sfreports.from_env())',
  'local id = "' .. REPORT_PLACEHOLDER .. '"',
}, " ") -- one line: the recipe's line numbers stay those of the README block

-- The words of a marker: { report =, dashboard =, prelude =, out = { ... } }.
local function parse_marker(s)
  local m = { out = {} }
  local rest = s
  while true do
    rest = rest:gsub("^%s+", "")
    if rest == "" then break end
    local k, v, after = rest:match('^([%w_]+)="([^"]*)"(.*)$')
    if not k then k, v, after = rest:match("^([%w_]+)=(%S+)(.*)$") end
    if not k then k, after = rest:match("^([%w_]+)(.*)$"); v = true end
    assert(k, "cannot read recipe marker: " .. s)
    if k == "out" then m.out[#m.out + 1] = (v:gsub("\\t", "\t")) else m[k] = v end
    rest = after
  end
  return m
end

-- Every marked ```lua block of a Markdown file: { line =, code =, marker = }.
local function recipes(path)
  local text = assert(read_file(path))
  local list, lines = {}, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local i = 1
  while i <= #lines do
    local words = lines[i]:match("^<!%-%- recipe(.-)%-%->%s*$")
    if words then
      assert(lines[i + 1] == "```lua", path .. ":" .. i .. ": a recipe marker must be followed by ```lua")
      local body, j = {}, i + 2
      while lines[j] and lines[j] ~= "```" do
        body[#body + 1] = lines[j]
        j = j + 1
      end
      assert(lines[j], path .. ":" .. i .. ": unterminated recipe")
      list[#list + 1] = { line = i + 1, code = table.concat(body, "\n") .. "\n", marker = parse_marker(words) }
      i = j
    end
    i = i + 1
  end
  return list
end

local function plain_gsub(s, from, to)
  return (s:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%"))))
end

local org, TMP
local counter = 0

-- Runs one recipe as a script; { out =, err =, code = }.
local function run_recipe(r)
  local code = r.code
  if r.marker.prelude then code = PRELUDE .. "\n" .. code end
  if r.marker.report then
    local rep = assert(fakeorg.reports[r.marker.report], "no fake-org report " .. tostring(r.marker.report))
    code = plain_gsub(code, REPORT_PLACEHOLDER, rep.id)
  end
  if r.marker.dashboard then
    local d = assert(DASHBOARDS[r.marker.dashboard], "no fake-org dashboard " .. tostring(r.marker.dashboard))
    code = plain_gsub(code, DASHBOARD_PLACEHOLDER, d)
  end
  counter = counter + 1
  local dir = TMP .. "/recipe" .. counter
  os.execute("mkdir -p " .. q(dir))
  local script = dir .. "/recipe.lua"
  local fh = assert(io.open(script, "wb"))
  fh:write(code)
  fh:close()
  local cmd = table.concat({
    "cd", q(dir), "&&", "env",
    "-u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_PATH_5_3 -u LUA_CPATH_5_3 -u LUA_INIT -u LUA_INIT_5_4 -u LUA_INIT_5_3",
    "-u SF_API_VERSION",
    "LUA_PATH=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
    "LUA_CPATH=" .. q(ROOT .. "/build/" .. LUA .. "/?.so;;"),
    "SF_INSTANCE_URL=" .. q(org.url), "SF_ACCESS_TOKEN=" .. q(org.token),
    LUA, "recipe.lua", "</dev/null >out 2>err; echo $? >rc",
  }, " ")
  os.execute(cmd)
  return {
    out = read_file(dir .. "/out") or "",
    err = read_file(dir .. "/err") or "",
    code = tonumber((read_file(dir .. "/rc") or ""):match("%d+")),
  }
end

describe("README recipes", function()
  local list = recipes(ROOT .. "/README.md")

  setup(function()
    org = fakeorg.start()
    org:control("config", { async_delay = 0 })
    TMP = org.dir .. "/recipes"
    os.execute("mkdir -p " .. q(TMP))
  end)

  teardown(function()
    if org then org:stop() end
  end)

  it("are marked in the README (the reference examples among them)", function()
    assert.is_true(#list >= 6, "only " .. #list .. " recipes found in README.md")
    local printing = 0
    for _, r in ipairs(list) do
      if #r.marker.out > 0 then printing = printing + 1 end
    end
    assert.is_true(printing >= 4, "only " .. printing .. " recipes check their output")
  end)

  for _, r in ipairs(list) do
    local first = r.code:match("^[^\n]*")
    it(("README.md:%d runs as written (%s)"):format(r.line, first), function()
      local res = run_recipe(r)
      assert.are.equal(0, res.code, "exit status " .. tostring(res.code) .. "; stderr:\n" .. res.err
        .. "\nstdout:\n" .. res.out:sub(1, 2000))
      assert.are.equal("", res.err)
      for _, want in ipairs(r.marker.out) do
        assert.truthy(res.out:find(want, 1, true),
          ("expected %q on stdout, got:\n%s"):format(want, res.out:sub(1, 2000)))
      end
    end)
  end
end)
