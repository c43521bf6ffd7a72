-- The rockspec is correct for users who have LuaRocks: every module is mapped, and
-- `luarocks make --deps-mode=none` builds and installs a loadable library offline; the
-- LuaRocks recipe of docs/install.md runs as written. Builds happen in scratch copies of
-- the checkout: `luarocks make` compiles in place and would leave sfreports/core.so there.
local ROCKSPEC = "rockspec/sfreports-scm-1.rockspec"

-- Runs the rockspec (a Lua file of assignments) in an empty environment.
local function load_rockspec()
  local f = assert(io.open(ROCKSPEC))
  local src = f:read("*a")
  f:close()
  local env = {}
  local chunk
  if setfenv then
    chunk = assert(loadstring(src, "=rockspec"))
    setfenv(chunk, env)
  else
    chunk = assert(load(src, "=rockspec", "t", env))
  end
  chunk()
  return env
end

-- Runs a shell command: whether it exited 0, and its output. The shell prints the exit
-- status because io.popen's close() does not report it on Lua 5.1/LuaJIT.
local function sh(cmd)
  local p = assert(io.popen("{ " .. cmd .. "\n} 2>&1; echo \"__exit=$?\""))
  local out = p:read("*a")
  p:close()
  local status = out:match("__exit=(%d+)%s*$")
  return status == "0", (out:gsub("__exit=%d+%s*$", ""))
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function scratch_dir()
  local d = os.tmpname()
  os.remove(d)
  assert(sh("mkdir -p " .. d))
  return d
end

-- A scratch copy of what the rockspec builds from (no objects the checkout may hold).
local function scratch_copy()
  local d = scratch_dir()
  local ok, out = sh(("cp -r rockspec src lua bin %s/ && rm -f %s/src/*.o"):format(d, d))
  assert(ok, out)
  return d
end

-- The ```sh block after the `<!-- recipe -->` line of a Markdown file, verbatim.
local function shell_recipe(path)
  local f = assert(io.open(path))
  local text = f:read("*a")
  f:close()
  local body = text:match("\n<!%-%- recipe %-%->\n```sh\n(.-)\n```\n")
  return assert(body, "no recipe in " .. path)
end

describe("rockspec", function()
  it("maps every Lua module and the C core", function()
    local spec = load_rockspec()
    assert.equal("sfreports", spec.package)
    local modules = spec.build.modules
    assert.same({ "src/core.c" }, modules["sfreports.core"].sources)
    assert.same({ "src/xlsx.c" }, modules["sfreports.xlsx"].sources)
    local _, listing = sh("find lua/sfreports -name '*.lua' | sort")
    local count = 0
    for path in listing:gmatch("[^\n]+") do
      local name = path:match("lua/sfreports/(.-)%.lua$"):gsub("/", ".")
      local module = name == "init" and "sfreports" or ("sfreports." .. name)
      assert.equal(path, modules[module], "rockspec does not map " .. module)
      count = count + 1
    end
    local mapped = 0
    for name in pairs(modules) do
      if name ~= "sfreports.core" and name ~= "sfreports.xlsx" then mapped = mapped + 1 end
    end
    assert.equal(count, mapped, "rockspec maps modules that do not exist")
    assert.equal("bin/sfreports", spec.build.install.bin.sfreports)
  end)

  it("builds and installs offline with luarocks make", function()
    local tree = os.tmpname()
    os.remove(tree)
    local copy = scratch_copy()
    local version = (_VERSION:match("%d+%.%d+"))
    -- Debian keeps curl.h under the multiarch include directory, which pkg-config knows
    local incdir = select(2, sh("pkg-config --variable=includedir libcurl")):gsub("%s+$", "")
    local ok, out = sh(("cd %s && luarocks --lua-version %s --tree %s make --deps-mode=none %s CURL_INCDIR=%s")
      :format(copy, version, tree, ROCKSPEC, incdir))
    sh("rm -rf " .. copy)
    assert.is_true(ok, out)
    local lua = rawget(_G, "jit") and "luajit" or ("lua" .. version)
    local check = ("LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;' LUA_CPATH='%s/lib/lua/%s/?.so;;' "
      .. "%s -e 'local s = require \"sfreports\"; io.write(s.VERSION, \" \") "
      -- which file the C core came from (package.searchpath does not exist on 5.1)
      .. "for t in package.cpath:gmatch(\"[^;]+\") do local f = t:gsub(\"%%?\", \"sfreports/core\") "
      .. "if io.open(f) then io.write(f) break end end'")
      :format(tree, version, tree, version, tree, version, lua)
    local ok2, out2 = sh(check)
    assert.is_true(ok2, out2)
    assert.matches("^%d+%.%d+%.%d+", out2)
    assert.matches(tree .. "/lib/lua/", out2, 1, true)
    sh("rm -rf " .. tree)
  end)

  it("docs/install.md: the LuaRocks recipe runs as written and leaves nothing to shadow the build", function()
    local had_core = exists("sfreports/core.so")
    local copy, tree = scratch_copy(), scratch_dir()
    local recipe = shell_recipe("docs/install.md")
    assert.truthy(recipe:find("luarocks --lua-version 5.4 make --deps-mode=none", 1, true), recipe)
    -- the one change: each luarocks command installs into the scratch tree, whose paths are
    -- set as `luarocks path` sets them (./?.so second: the worst case for a leftover)
    local run = recipe:gsub("luarocks %-%-lua%-version", "luarocks --tree " .. tree .. " --lua-version")
    local ok, out = sh(("cd %s && unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 LUA_INIT LUA_INIT_5_4"
      .. " && eval \"$(luarocks --lua-version 5.4 --tree %s path)\" && %s"):format(copy, tree, run))
    assert.is_true(ok, out)
    assert.matches("\n%d+%.%d+%.%d+%s*$", out)
    -- nothing left in the copy, and the core a script in it loads is the tree's
    local _, left = sh(("cd %s && ls -d sfreports src/*.o 2>/dev/null"):format(copy))
    assert.equal("", left)
    local ok2, where = sh(("cd %s && unset LUA_PATH LUA_CPATH && eval \"$(luarocks --lua-version 5.4 --tree %s path)\""
      .. " && lua5.4 -e 'print(package.searchpath(\"sfreports.core\", package.cpath))'"):format(copy, tree))
    assert.is_true(ok2, where)
    assert.equal(tree .. "/lib/lua/5.4/sfreports/core.so\n", where)
    sh("rm -rf " .. copy .. " " .. tree)
    -- and the spec itself built nothing in the checkout
    assert.is_true(had_core or not exists("sfreports/core.so"), "sfreports/core.so appeared in the checkout")
  end)
end)
