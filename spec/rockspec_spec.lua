-- The rockspec is correct for users who have LuaRocks: every module is mapped, and
-- `luarocks make --deps-mode=none` builds and installs a loadable library offline.
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
    local version = (_VERSION:match("%d+%.%d+"))
    -- Debian keeps curl.h under the multiarch include directory, which pkg-config knows
    local incdir = select(2, sh("pkg-config --variable=includedir libcurl")):gsub("%s+$", "")
    local ok, out = sh(("luarocks --lua-version %s --tree %s make --deps-mode=none %s CURL_INCDIR=%s")
      :format(version, tree, ROCKSPEC, incdir))
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
end)
