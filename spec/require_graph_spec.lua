-- require_graph_spec: no require cycle among the modules of lua/sfreports/, lazy requires
-- (inside functions) included, since a lazy require only hides a cycle from load order.
-- The checker (spec/support/require_graph.lua) is tested first on small made-up trees,
-- so each of its rules is shown to fire.
local rg = require "require_graph"
local fakeorg = require "fakeorg"

local function here()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return src:match("^(.*)/[^/]*$") or "."
end
local ROOT = here() .. "/.."

local function names(list)
  local out = {}
  for _, r in ipairs(list) do out[#out + 1] = r.name or "<dynamic>" end
  return out
end

describe("the require graph checker", function()
  it("reads every literal form of require, and pcall(require, ...)", function()
    assert.same({ "a", "b", "c", "d", "e" }, names(rg.requires([=[
      local a = require "a"
      local b = require('b')
      local c = require [[c]]
      local ok, d = pcall(require, "d")
      return require"e".x
    ]=])))
  end)

  it("counts requires inside functions (lazy) like top-level ones", function()
    assert.same({ "x" }, names(rg.requires([[
      local M = {}
      function M.later() return require("x").go() end
      return M
    ]])))
  end)

  it("ignores require in comments and strings, and methods or fields named require", function()
    assert.same({}, names(rg.requires([==[
      -- local c = require "commented"
      --[[ require("block") ]]
      --[=[ require "level1" ]=]
      local s = 'require "in a string"'
      local t = [[require("long string")]]
      local u = obj:require("method")
      local v = obj.require("field")
      local function require(name) return name end
    ]==])))
  end)

  it("marks a require whose argument is not a literal as dynamic", function()
    assert.same({ "<dynamic>" }, names(rg.requires([[ local m = require(name) ]])))
  end)

  it("finds a cycle closed by a lazy require, with the path and the requires to cut", function()
    local graph = rg.graph({
      a = 'local b = require "b"',
      b = 'local c = require "c"',
      c = 'local M = {} function M.f() return require("a") end return M',
      d = 'local a = require "a"', -- outside the cycle
      e = 'local j = require "cjson"', -- outside the tree: a leaf
    })
    local cycles = rg.cycles(graph)
    assert.equal(1, #cycles)
    assert.same({ "a", "b", "c", "a" }, { cycles[1][1], cycles[1][2], cycles[1][3], cycles[1][4] })
    assert.same({ "a", "b", "c" }, cycles[1].members)
    assert.equal("a -> b -> c -> a (modules on a cycle: a, b, c; their requires: a -> b, b -> c, c -> a)",
      rg.describe(cycles, graph))
  end)

  it("finds a module requiring itself and two separate cycles", function()
    local cycles = rg.cycles(rg.graph({
      self = 'local s = require "self"',
      p = 'require "q"', q = 'require "p"',
      r = 'require "p"',
    }))
    assert.equal(2, #cycles)
    assert.same({ "p", "q", "p" }, { cycles[1][1], cycles[1][2], cycles[1][3] })
    assert.same({ "self", "self" }, { cycles[2][1], cycles[2][2] })
  end)

  it("finds none in a graph whose requires all point one way", function()
    assert.same({}, rg.cycles(rg.graph({
      top = 'require "mid" require "leaf"',
      mid = 'local function f() return require "leaf" end',
      leaf = 'return {}',
    })))
  end)
end)

describe("lua/sfreports/", function()
  local graph = rg.scan(ROOT .. "/lua", "sfreports")

  it("is scanned whole: every module file is in the graph", function()
    local listing = fakeorg.run("find " .. fakeorg.shell_quote(ROOT .. "/lua/sfreports") .. " -name '*.lua' -type f")
    local files = select(2, listing:gsub("%.lua\n", ""))
    local modules = 0
    for _ in pairs(graph) do modules = modules + 1 end
    assert.is_true(files > 5, listing)
    assert.equal(files, modules)
    assert.is_table(graph.sfreports)
    assert.is_table(graph["sfreports.client"])
  end)

  it("requires every module by a literal name, so the graph is complete", function()
    local dynamic = {}
    for m, node in pairs(graph) do
      if node.dynamic > 0 then dynamic[#dynamic + 1] = m end
    end
    table.sort(dynamic)
    assert.same({}, dynamic)
  end)

  it("has no require cycle, lazy requires included", function()
    local cycles = rg.cycles(graph)
    assert.is_true(#cycles == 0, "require cycles:\n" .. rg.describe(cycles, graph))
  end)
end)
