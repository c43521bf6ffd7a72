-- spec/support/require_graph.lua: the require graph of a Lua source tree and its cycles.
-- Every `require` with a literal module name counts, wherever it is: at the top of a file
-- or lazily inside a function (a lazy require hides a cycle from load order, not from the
-- design). Comments and strings are skipped by a small tokenizer, so a comment that says
-- require "x" is not an edge.
--   local rg = require "require_graph"
--   local graph = rg.scan("lua", "sfreports")   -- { [module] = { deps = {...}, file = ... } }
--   local cycles = rg.cycles(graph)              -- { { "a", "b", "a" }, ... }
-- As a script (a lint step): lua spec/support/require_graph.lua [ROOT [PREFIX]] prints each
-- cycle and exits 1 when there is one.
local rg = {}

-- Tokens of Lua source text: { kind = "name"|"string"|"op", value = ... }, comments and
-- whitespace dropped. Enough of Lua's lexical rules to tell code from strings/comments:
-- long brackets of any level, short strings with escapes, `--` comments.
function rg.tokens(src)
  local out, i, n = {}, 1, #src
  local function long_bracket_at(pos)
    local eq = src:match("^%[(=*)%[", pos)
    if not eq then return nil end
    local close = "]" .. eq .. "]"
    local body_start = pos + #eq + 2
    local stop = src:find(close, body_start, true)
    if not stop then return n + 1, src:sub(body_start) end -- unfinished: to the end
    return stop + #close, src:sub(body_start, stop - 1)
  end
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local after, _ = long_bracket_at(i + 2)
      if after then
        i = after
      else
        local nl = src:find("\n", i, true)
        i = nl and nl + 1 or n + 1
      end
    elseif c == "[" and src:match("^%[=*%[", i) then
      local after, body = long_bracket_at(i)
      out[#out + 1] = { kind = "string", value = body }
      i = after
    elseif c == '"' or c == "'" then
      local j, buf = i + 1, {}
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then
          buf[#buf + 1] = src:sub(j, j + 1)
          j = j + 2
        elseif d == c or d == "\n" then
          break
        else
          buf[#buf + 1] = d
          j = j + 1
        end
      end
      out[#out + 1] = { kind = "string", value = table.concat(buf) }
      i = j + 1
    elseif c:match("[%a_]") then
      local name = src:match("^[%w_]+", i)
      out[#out + 1] = { kind = "name", value = name }
      i = i + #name
    elseif c:match("%d") then
      local num = src:match("^%w[%w%.]*", i) -- 0x1p4, 1e10 and the like: never a name
      i = i + #num
    else
      out[#out + 1] = { kind = "op", value = c }
      i = i + 1
    end
  end
  return out
end

-- The modules a source text requires: a list of { name = string } in order of appearance,
-- plus { dynamic = true } for a require whose argument is not a literal (which cannot be
-- checked, so the caller decides). Forms: require "m", require 'm', require [[m]],
-- require("m"), pcall(require, "m").
function rg.requires(src)
  local t, found = rg.tokens(src), {}
  local function is(k, kind, value)
    local tok = t[k]
    return tok and tok.kind == kind and (value == nil or tok.value == value)
  end
  for k = 1, #t do
    if is(k, "name", "require") and not is(k - 1, "op", ".") and not is(k - 1, "op", ":") then
      if is(k + 1, "string") then
        found[#found + 1] = { name = t[k + 1].value }
      elseif is(k + 1, "op", "(") and is(k + 2, "string") and is(k + 3, "op", ")") then
        found[#found + 1] = { name = t[k + 2].value }
      elseif is(k + 1, "op", ",") and is(k + 2, "string") and is(k - 1, "op", "(")
          and is(k - 2, "name", "pcall") then
        found[#found + 1] = { name = t[k + 2].value }
      elseif is(k + 1, "op", "(") and not is(k - 1, "name", "function") then
        -- (`local function require(...)` defines one; any other call is a require)
        found[#found + 1] = { dynamic = true }
      end
    end
  end
  return found
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Module name of a file below root: lua/a/b.lua -> a.b, lua/a/init.lua -> a.
local function module_of(root, path)
  local rel = path:sub(#root + 2):gsub("%.lua$", ""):gsub("/init$", "")
  return (rel:gsub("/", "."))
end

-- The graph of every .lua file under root/prefix (prefix: a top-level package name whose
-- files are root/prefix.lua, root/prefix/init.lua and root/prefix/**.lua; nil: all of
-- root). Only edges to modules of the scanned set are kept (cjson, the C core and
-- ngx.* are leaves outside it). graph[m] = { file, deps = { names... }, dynamic = n }.
function rg.scan(root, prefix)
  local where = prefix and (shell_quote(root .. "/" .. prefix) .. " " .. shell_quote(root .. "/" .. prefix .. ".lua"))
    or shell_quote(root)
  local p = assert(io.popen("find " .. where .. " -name '*.lua' -type f 2>/dev/null | LC_ALL=C sort"))
  local sources = {}
  for path in p:lines() do
    sources[module_of(root, path)] = { file = path, text = assert(read(path), "cannot read " .. path) }
  end
  p:close()
  return rg.graph(sources)
end

-- The graph of sources given as { [module] = { file =, text = } } (or module -> text).
function rg.graph(sources)
  local graph = {}
  for m, s in pairs(sources) do
    local text = type(s) == "table" and s.text or s
    local node = { file = type(s) == "table" and s.file or m, deps = {}, dynamic = 0 }
    local seen = {}
    for _, r in ipairs(rg.requires(text)) do
      if r.dynamic then
        node.dynamic = node.dynamic + 1
      elseif sources[r.name] and not seen[r.name] then
        seen[r.name] = true
        node.deps[#node.deps + 1] = r.name
      end
    end
    table.sort(node.deps)
    graph[m] = node
  end
  return graph
end

-- Every cycle as a path that starts and ends with the same module: one per strongly
-- connected component with more than one module (or a module that requires itself),
-- found with Tarjan's algorithm and walked from its alphabetically first module.
function rg.cycles(graph)
  local index, low, on_stack, stack, counter, sccs = {}, {}, {}, {}, 0, {}
  local function connect(v)
    counter = counter + 1
    index[v], low[v] = counter, counter
    stack[#stack + 1], on_stack[v] = v, true
    for _, w in ipairs(graph[v].deps) do
      if not index[w] then
        connect(w)
        low[v] = math.min(low[v], low[w])
      elseif on_stack[w] then
        low[v] = math.min(low[v], index[w])
      end
    end
    if low[v] == index[v] then
      local scc = {}
      repeat
        local w = table.remove(stack)
        on_stack[w] = nil
        scc[w] = true
        scc[#scc + 1] = w
      until w == v
      sccs[#sccs + 1] = scc
    end
  end
  local names = {}
  for m in pairs(graph) do names[#names + 1] = m end
  table.sort(names)
  for _, m in ipairs(names) do
    if not index[m] then connect(m) end
  end
  local cycles = {}
  for _, scc in ipairs(sccs) do
    table.sort(scc)
    local first = scc[1]
    local self_loop = false
    for _, d in ipairs(graph[first].deps) do if d == first then self_loop = true end end
    if #scc > 1 or self_loop then
      -- the shortest way from first back to itself inside the component (breadth first)
      local prev, queue, head, found = { [first] = false }, { first }, 1, nil
      while head <= #queue and not found do
        local v = queue[head]
        head = head + 1
        for _, w in ipairs(graph[v].deps) do
          if w == first then found = v break end
          if scc[w] and prev[w] == nil then
            prev[w] = v
            queue[#queue + 1] = w
          end
        end
      end
      local path = { first }
      local v = found
      while v and v ~= first do
        table.insert(path, 2, v)
        v = prev[v]
      end
      path[#path + 1] = first
      path.members = {}
      for i = 1, #scc do path.members[i] = scc[i] end
      cycles[#cycles + 1] = path
    end
  end
  table.sort(cycles, function(a, b) return a[1] < b[1] end)
  return cycles
end

-- One line per cycle, "a -> b -> a (modules on a cycle: a, b, c; their requires:
-- a -> b, b -> a, b -> c, c -> b)": the requires to cut are among those listed.
function rg.describe(cycles, graph)
  local lines = {}
  for _, c in ipairs(cycles) do
    local path, member, edges = {}, {}, {}
    for i = 1, #c do path[i] = c[i] end
    for _, m in ipairs(c.members) do member[m] = true end
    for _, m in ipairs(c.members) do
      for _, d in ipairs(graph and graph[m].deps or {}) do
        if member[d] then edges[#edges + 1] = m .. " -> " .. d end
      end
    end
    local line = table.concat(path, " -> ") .. " (modules on a cycle: " .. table.concat(c.members, ", ")
    if #edges > 0 then line = line .. "; their requires: " .. table.concat(edges, ", ") end
    lines[#lines + 1] = line .. ")"
  end
  return table.concat(lines, "\n")
end

-- As a script: cycles of ROOT/PREFIX (default lua/sfreports), exit status 1 if any.
-- (required, the chunk's first argument is the module name; run, it is ARGV[1] or nothing)
local first_arg = ...
if first_arg ~= "require_graph" and arg and arg[0] and arg[0]:match("require_graph%.lua$") then
  local root, prefix = arg[1] or "lua", arg[2] or "sfreports"
  local graph = rg.scan(root, prefix)
  local cycles = rg.cycles(graph)
  if #cycles > 0 then
    io.stderr:write("require cycles in ", root, "/", prefix, ":\n", rg.describe(cycles, graph), "\n")
    os.exit(1)
  end
  print("no require cycle in " .. root .. "/" .. prefix)
end

return rg
