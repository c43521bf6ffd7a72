-- export_spec: client:export and export_many on the libcurl engine against the fake org
-- (Salesforce's formatted export: a real xlsx, Content-Disposition, JSON errors), and the
-- request description's sink (ropts.sink) it rests on: the file streamed to a path (a
-- temporary file renamed only when complete), a handle or a function; errors classified
-- as usual; a 2xx that is not an xlsx refused; retries before the first byte only;
-- renewal; max_response; no partial file ever under the final name; a multi-megabyte
-- body in the memory of one buffer (a child process's peak RSS).
local sfreports = require "sfreports"
local core = require "sfreports.core"
local fakeorg = require "fakeorg"
local reader = require "xlsx_reader"

local R = fakeorg.reports
local q = fakeorg.shell_quote
local read_file = fakeorg.read_file

local XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
local LUA = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("(%d+%.%d+)"))

local org, client, DIR

local function leftovers()
  local p = io.popen("ls -a " .. q(DIR))
  local found = {}
  for name in p:lines() do
    if name ~= "." and name ~= ".." then found[#found + 1] = name end
  end
  p:close()
  return found
end

local function clean()
  os.execute("rm -rf " .. q(DIR) .. " && mkdir -p " .. q(DIR))
end

local function requests_to(id)
  local n = 0
  for path, count in pairs(org:stats().by_path or {}) do
    if path:find(id, 1, true) and not path:find("describe", 1, true) then n = n + count end
  end
  return n
end

-- The bytes the org sends for a GET of the report with the xlsx Accept header (curl(1)).
local function download(id)
  local path = DIR .. "/curl.xlsx"
  fakeorg.run(org:curl_base() .. " -H " .. q("Authorization: Bearer " .. org.token) .. " -H " .. q("Accept: " .. XLSX)
    .. " -o " .. q(path) .. " " .. q(org:api("67.0") .. "/reports/" .. id .. "?includeDetails=true"))
  local s = read_file(path)
  os.remove(path)
  return s
end

describe("client:export", function()
  setup(function()
    org = fakeorg.start()
    client = assert(sfreports.new{ instance_url = org.url, access_token = org.token, retry_base = 0.01 })
    DIR = org.dir .. "/export"
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  before_each(function()
    org:reset()
    clean()
  end)

  it("streams Salesforce's file to a path, renamed into place when complete", function()
    local path = DIR .. "/pipeline.xlsx"
    local info = assert(client:export(R.tabular_wide.id, { to = path }))
    assert.are.equal(path, info.path)
    assert.are.equal("Wide Opportunity Export.xlsx", info.filename)
    assert.are.equal(XLSX, info.content_type)
    assert.are.equal(200, info.status)
    local bytes = read_file(path)
    assert.are.equal(#bytes, info.bytes)
    assert.is_true(#bytes > 2 * 1024 * 1024)
    assert.are.equal(1, requests_to(R.tabular_wide.id))
    assert.are.equal(download(R.tabular_wide.id), bytes)
    assert.is_true((reader.test(path)))
    assert.are.equal(2001, reader.open(path):sheet(1).last_row)
    assert.are.same({ "pipeline.xlsx" }, leftovers())
  end)

  it("streams to a file handle and to a function, with on_start before the first byte", function()
    local path = DIR .. "/handle.xlsx"
    local f = assert(io.open(path, "wb"))
    local info = assert(client:export(R.summary_3.id, { to = f }))
    f:close()
    assert.is_nil(info.path)
    assert.are.equal(#read_file(path), info.bytes)
    local events, chunks, total = {}, 0, 0
    info = assert(client:export(R.tabular_wide.id, {
      on_start = function(i) events[#events + 1] = "start:" .. i.filename .. ":" .. i.content_type end,
      to = function(chunk)
        if chunks == 0 then events[#events + 1] = "chunk" end
        chunks, total = chunks + 1, total + #chunk
      end,
    }))
    assert.are.same({ "start:Wide Opportunity Export.xlsx:" .. XLSX, "chunk" }, events)
    assert.are.equal(total, info.bytes)
    assert.is_true(chunks > 4, "chunks: " .. chunks)
  end)

  it("POSTs the run options and exports what they select", function()
    local f = require "sfreports.filters"
    local path = DIR .. "/big.xlsx"
    local opts = { filters = f.gt("AMOUNT", 100000), columns = { "OPPORTUNITY_NAME", "AMOUNT" } }
    assert(client:export(R.tabular_small.id, { to = path, filters = opts.filters, columns = opts.columns }))
    local report = assert(client:run_sync(R.tabular_small.id, opts))
    local sheet = reader.open(path):sheet(1)
    assert.are.equal(report:row_count() + 1, sheet.last_row)
    assert.are.same({ "Opportunity Name", "Amount" }, { sheet.rows[1][1].value, sheet.rows[1][2].value })
    assert.is_nil(sheet.rows[1][3])
    assert.is_true(report:row_count() < 40)
  end)

  it("classifies JSON errors as usual and leaves no file", function()
    local info, err = client:export("00OFk00000Z0001MAB", { to = DIR .. "/missing.xlsx" })
    assert.is_nil(info)
    assert.are.same({ "api", 404, "NOT_FOUND" }, { err.kind, err.status, err.code })
    assert.are.same({}, leftovers())
    local _, bad = client:export("00OFk00000A0001MAX", { to = DIR .. "/x.xlsx" })
    assert.are.equal("invalid", bad.kind)
    assert.are.same({}, leftovers())
  end)

  it("refuses a 2xx that is not an xlsx (JSON, HTML, empty)", function()
    org:control("fault", { kind = "body", body = '{"allData":true}' })
    local _, err = client:export(R.tabular_small.id, { to = DIR .. "/j.xlsx" })
    assert.are.same({ "http", 200, false }, { err.kind, err.status, err.retryable })
    assert.truthy(err.message:find("content type application/json;charset=UTF-8 where " .. XLSX .. " was expected",
      1, true))
    org:control("fault", { kind = "empty200" })
    _, err = client:export(R.tabular_small.id, { to = DIR .. "/e.xlsx" })
    assert.are.equal("decode", err.kind)
    assert.truthy(err.message:find("an empty body where " .. XLSX, 1, true), err.message)
    assert.are.same({}, leftovers())
  end)

  it("retries before the first byte (502 page, 503 Retry-After), never after it", function()
    org:control("fault", { kind = "html502", count = 1 })
    local path = DIR .. "/ok.xlsx"
    assert(client:export(R.tabular_small.id, { to = path }))
    assert.are.equal(2, requests_to(R.tabular_small.id))
    org:reset()
    org:control("fault", { kind = "reset", bytes = 200000 })
    local info, err = client:export(R.tabular_small.id, { to = DIR .. "/cut.xlsx" })
    assert.is_nil(info)
    assert.are.same({ "network", false }, { err.kind, err.retryable })
    assert.is_true(err.streamed > 0)
    assert.are.equal(1, requests_to(R.tabular_small.id))
    assert.are.same({ "ok.xlsx" }, leftovers())
  end)

  it("gives up on a stalled transfer without retrying it, leaving no file", function()
    local c = assert(sfreports.new{ instance_url = org.url, access_token = org.token, stall_timeout = 0.5 })
    org:control("fault", { kind = "stall", bytes = 100000, seconds = 5 })
    local _, err = c:export(R.tabular_small.id, { to = DIR .. "/stall.xlsx" })
    c:close()
    assert.are.same({ "timeout", false }, { err.kind, err.retryable })
    assert.truthy(err.message:find("stall_timeout", 1, true))
    assert.are.equal(1, requests_to(R.tabular_small.id))
    assert.are.same({}, leftovers())
  end)

  it("stops at max_response and leaves no file", function()
    local c = assert(sfreports.new{ instance_url = org.url, access_token = org.token, max_response = 100000 })
    local _, err = c:export(R.tabular_wide.id, { to = DIR .. "/big.xlsx" })
    c:close()
    assert.are.same({ "limit", false }, { err.kind, err.retryable })
    assert.truthy(err.message:find("max_response (100000 bytes)", 1, true))
    assert.are.same({}, leftovers())
  end)

  it("renews an expired token and sends the export again", function()
    local c = assert(sfreports.new{ auth = { flow = "refresh_token", client_id = "id", client_secret = "secret",
      refresh_token = "refresh", login_url = org.url } })
    assert(c:export(R.tabular_small.id, { to = DIR .. "/one.xlsx" }))
    org:control("expire_tokens")
    local info = assert(c:export(R.tabular_small.id, { to = DIR .. "/two.xlsx" }))
    assert.are.equal(1, c:auth_info().renewals)
    assert.are.equal(read_file(DIR .. "/one.xlsx"), read_file(DIR .. "/two.xlsx"))
    assert.is_true(info.bytes > 0)
    c:close()
  end)

  it("ends the transfer when the destination fails or raises, and leaves no file", function()
    local n = 0
    local _, err = client:export(R.tabular_wide.id, { to = function()
      n = n + 1
      if n == 2 then return nil, "disk full" end
    end })
    assert.are.same({ "io", false }, { err.kind, err.retryable })
    assert.truthy(err.message:find("the sink failed: disk full", 1, true), err.message)
    assert.are.equal(2, n)
    -- a raise in on_start (before the first byte reaches the path) or in the sink
    _, err = client:export(R.tabular_wide.id, { to = DIR .. "/r.xlsx", on_start = function() error("stop here") end })
    assert.are.equal("io", err.kind)
    assert.truthy(err.message:find("stop here", 1, true))
    assert.are.same({}, leftovers())
    assert.are.equal(2, requests_to(R.tabular_wide.id))
  end)

  it("refuses misuse naming the option", function()
    assert.has_error(function() client:export(R.tabular_small.id, {}) end,
      "sfreports: export needs option 'to' (a path, a file handle or a function)")
    assert.has_error(function() client:export(R.tabular_small.id, { to = DIR .. "/x", async = true }) end,
      "sfreports: unknown option 'async' for export")
    assert.has_error(function() client:export(R.tabular_small.id, { to = 42 }) end)
    assert.has_error(function() client:export(R.tabular_small.id, { to = {} }) end,
      "sfreports: export option 'to' must be a path, a function or have a :write method")
    local _, err = client:export(R.tabular_small.id, { to = DIR .. "/no/such/dir/x.xlsx" })
    assert.are.equal("io", err.kind)
    assert.are.equal(0, requests_to(R.tabular_small.id))
  end)

  describe("export_many", function()
    -- a transfer an earlier test abandoned ends on the server later; the org's in-flight
    -- count must be back to zero before max_concurrent can be read
    local function settle()
      for _ = 1, 200 do
        if org:stats().inflight == 0 then break end
        os.execute("sleep 0.05")
      end
      org:reset()
    end

    it("runs one export at a time unless told otherwise", function()
      settle()
      org:control("config", { sync_delay = 0.3 })
      local list = {}
      for i = 1, 3 do list[i] = { id = R.tabular_small.id, to = DIR .. "/s" .. i .. ".xlsx" } end
      local results, errs = client:export_many(list)
      for i = 1, 3 do
        assert.is_nil(errs[i])
        assert.are.equal(list[i].to, results[i].path)
      end
      assert.are.equal(1, org:stats().max_concurrent)
      settle()
      org:control("config", { sync_delay = 0.3 })
      for i = 1, 3 do list[i].to = DIR .. "/c" .. i .. ".xlsx" end
      list[4] = { id = "00OFk00000Z0001MAB", to = DIR .. "/missing.xlsx" }
      results, errs = client:export_many(list, { concurrency = 3 })
      assert.are.equal(3, org:stats().max_concurrent)
      for i = 1, 3 do assert.are.equal(read_file(DIR .. "/s1.xlsx"), read_file(results[i].path)) end
      assert.is_nil(results[4])
      assert.are.equal(404, errs[4].status)
      assert.is_nil(io.open(DIR .. "/missing.xlsx", "rb"))
    end)

    it("tries a curable failure again (before any byte) in a concurrent batch", function()
      org:control("fault", { kind = "html502", count = 1 })
      local results, errs = client:export_many({ { id = R.summary_1.id, to = DIR .. "/a.xlsx" },
        { id = R.tabular_small.id, to = DIR .. "/b.xlsx" } }, { concurrency = 2 })
      assert.is_nil(errs[1])
      assert.is_nil(errs[2])
      assert.is_true(results[1].bytes > 0 and results[2].bytes > 0)
      assert.are.same({ "a.xlsx", "b.xlsx" }, (function() local l = leftovers() table.sort(l) return l end)())
    end)
  end)

  it("holds a multi-megabyte export in one buffer, not whole (peak RSS of a child process)", function()
    local script = DIR .. "/child.lua"
    local f = assert(io.open(script, "wb"))
    f:write([[
      local sfreports = require "sfreports"
      local c = assert(sfreports.new{ instance_url = arg[1], access_token = arg[2] })
      local chunks, biggest = 0, 0
      local info = assert(c:export("00OFk00000A0001MAB", { to = function(s)
        chunks = chunks + 1
        if #s > biggest then biggest = #s end
      end }))
      local status = io.open("/proc/self/status"):read("*a")
      print(info.bytes, chunks, biggest, status:match("VmHWM:%s*(%d+)"))
    ]])
    f:close()
    local function child(bytes)
      org:control("fault", { kind = "huge", bytes = bytes })
      -- the plain build of the interpreter this spec runs on (a sanitizer build of the
      -- core cannot load into a plain interpreter)
      local cpath = "build/" .. (LUA == "luajit" and "luajit" or LUA) .. "/?.so;;"
      local out = fakeorg.run(("LUA_PATH=%s LUA_CPATH=%s %s %s %s %s"):format(q(package.path), q(cpath), LUA,
        q(script), q(org.url), q(org.token)) .. " 2>&1")
      local n, chunks, biggest, hwm = out:match("(%d+)%s+(%d+)%s+(%d+)%s+(%d+)")
      assert(n, out)
      return tonumber(n), tonumber(chunks), tonumber(biggest), tonumber(hwm)
    end
    local small_n, _, _, small_hwm = child(2 * 1024 * 1024)
    local n, chunks, biggest, hwm = child(48 * 1024 * 1024)
    assert.is_true(n > 48 * 1024 * 1024)
    assert.is_true(small_n < 3 * 1024 * 1024)
    -- 46 MB more body: at most a few MB more peak memory (the 256 KB buffer, GC slack)
    assert.is_true(hwm - small_hwm < 8 * 1024, ("peak RSS %d kB vs %d kB"):format(hwm, small_hwm))
    assert.is_true(chunks > 100, "chunks: " .. chunks)
    assert.is_true(biggest <= 256 * 1024 + 65536, "largest chunk: " .. biggest)
  end)
end)

describe("ropts.sink (the request description)", function()
  local s

  it("streams only a 2xx of the type the Accept header names, and refuses misuse", function()
    local o = fakeorg.start()
    s = core.session{ base_url = o.url, token = o.token }
    local path = "/services/data/v67.0/analytics/reports/" .. R.tabular_small.id .. "?includeDetails=true"
    local got, heads = {}, 0
    local v, meta = s:request("GET", path, nil, { Accept = XLSX }, { sink = function(c, h)
      got[#got + 1] = c
      if h then heads = heads + 1 assert.are.equal(XLSX, h["content-type"]) end
    end })
    assert.are.equal(#table.concat(got), v)
    assert.are.same({ 200, v }, { meta.status, meta.bytes })
    assert.are.equal(1, heads)
    assert.truthy(meta.headers["content-disposition"]:find("filename=", 1, true))
    -- JSON asked for: it streams too (the Accept decides), a JSON error does not
    local n = 0
    v = s:request("GET", path, nil, { Accept = "application/json" }, { sink = function(c) n = n + #c end })
    assert.are.equal(n, v)
    local _, err = s:request("GET", "/services/data/v67.0/analytics/reports/00OFk00000Z0001MAB", nil,
      { Accept = XLSX }, { sink = function() error("never called") end })
    assert.are.equal(404, err.status)
    assert.has_error(function() s:request("GET", path, nil, nil, { sink = print }) end,
      "sfreports: a request with a sink needs an Accept header naming the media type to stream")
    assert.has_error(function() s:request("GET", path, nil, { Accept = XLSX }, { sink = "file" }) end,
      "sfreports: request option 'sink' must be a function")
    assert.has_error(function() s:run_sync(R.tabular_small.id, nil, true, { sink = print }) end,
      "sfreports: a request with a sink needs an Accept header naming the media type to stream")
    assert.is_true(core.streams(XLSX, 200, XLSX .. "; charset=binary"))
    assert.is_false(core.streams(XLSX, 404, XLSX))
    assert.is_false(core.streams(XLSX, 200, "application/json"))
    s:close()
    o:stop()
  end)

  it("hands the last bytes over when a started request's result is taken", function()
    local o = fakeorg.start()
    s = core.session{ base_url = o.url, token = o.token }
    local total = 0
    local h = s:start("GET", "/services/data/v67.0/analytics/reports/" .. R.summary_3.id .. "?includeDetails=true",
      nil, { Accept = XLSX }, { sink = function(c) total = total + #c end })
    local done
    while not done do
      for _, x in ipairs(s:perform(1)) do if x == h then done = true end end
    end
    local v = assert(h:result())
    assert.are.equal(total, v)
    assert.is_true(reader.test and v > 100000)
    s:close()
    o:stop()
  end)
end)
