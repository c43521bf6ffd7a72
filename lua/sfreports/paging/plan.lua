-- sfreports.paging.plan: planned ranges (run_all's "planned" strategy, the default for
-- TABULAR reports with a date or datetime key). One planning run asks the org for counts
-- instead of rows: the caller's metadata (filters and logic merged) run as a SUMMARY
-- grouped on the key (by Day; Month or Year when the key spans many years), without
-- detail rows, aggregate RowCount: its fact map counts every row of every group, with no
-- 2,000-row cap. The key range is then cut into slices of at most SLICE_TARGET rows at
-- group boundaries, [start of group i, start of group j), the first slice open below
-- and the last open above, so that a value the plan did not see (rows added since) still
-- falls in exactly one slice; blank keys are a slice of their own (`key = ""`). The
-- slices are "range" work items of the pager (sfreports.paging): they run `concurrency`
-- at a time, come out in key order, and a slice that still comes back truncated (data
-- changed, or one group over the cap) is cut again like any range: never a gap, never a
-- duplicate. The planning run goes out together with the caller's first run.
--
-- Fallbacks (the pager reports them in paged.strategy): keyset when the key cannot be
-- grouped (not a date), or when the planning run fails or answers something that is not
-- a count per group.
--
-- Limits: a batch of slices in which a run fails with a `limit` error (the org's
-- concurrent or hourly run limits) is paused as a whole and its failed slices go again
-- after the retry policy's backoff (sfreports.retry; the server's Retry-After when it
-- sends one), at most the client's `retries` times.
local json = require "sfreports.json"
local retry = require "sfreports.retry"
local sleep = require "sfreports.sleep"
local rowset = require "sfreports.paging.rowset"
local days = require "sfreports.days"

local type, ipairs, pairs, tonumber = type, ipairs, pairs, tonumber
local floor, huge = math.floor, math.huge
local sort = table.sort

local P = {}

P.SLICE_TARGET = 1500
P.DAY_SPAN = 3700        -- days a Day plan may span (about ten years of daily groups)
P.MONTH_SPAN = 36600     -- days a Month plan may span; past it, Year

local DATE_TYPES = { date = true, datetime = true }

-- Whether a column's data type can be planned on (grouped with a date granularity).
function P.plannable(data_type)
  return DATE_TYPES[data_type] == true
end

-- The key of a planning run, or nil when the run is not planned: `strategy` "planned",
-- or none for a saved TABULAR report; then the first of `names` (the caller's first key,
-- else the detail columns) that can page (unusable(describe, name) -> why | nil, column)
-- and is a date or datetime.
function P.key(strategy, describe, names, unusable)
  local md = type(describe.reportMetadata) == "table" and describe.reportMetadata or {}
  if strategy ~= "planned" and (strategy ~= nil or md.reportFormat ~= "TABULAR") then return nil end
  for _, name in ipairs(names) do
    local why, c = unusable(describe, name)
    if not why and P.plannable(c.dataType) then return c.name end
  end
  return nil
end

-- Days since 1970-01-01 of an ISO date (or the date part of a datetime), or nil.
local day_number = days.of_iso
P.day_number = day_number

-- The granularity of the plan for key values spanning [lo, hi] (ISO dates; unknown: Day).
function P.granularity(lo, hi)
  local a, b = day_number(lo), day_number(hi)
  if not a or not b then return "Day" end
  local span = b - a
  if span <= P.DAY_SPAN then return "Day" end
  if span <= P.MONTH_SPAN then return "Month" end
  return "Year"
end

-- The lowest and highest key values (column `name`) among the rows of a report, or nil.
function P.value_span(report, name)
  local ki
  for i, col in ipairs(report:columns()) do if col.name == name then ki = i end end
  if not ki then return nil end
  local lo, hi
  for row in report:rows() do
    local v = rowset.key_value(row.data_cells[ki])
    if type(v) == "string" then
      if lo == nil or v < lo then lo = v end
      if hi == nil or v > hi then hi = v end
    end
  end
  return lo, hi
end

-- The planning run's metadata: `md` (the caller's, filters merged) as a summary grouped
-- on `key` with `granularity`, counting rows, without detail rows.
function P.metadata(md, key, granularity)
  local out = {}
  for k, v in pairs(md) do out[k] = v end
  out.reportFormat = "SUMMARY"
  out.groupingsDown = json.array({ { name = key, sortOrder = "Asc", dateGranularity = granularity } })
  out.groupingsAcross = json.array({})
  out.aggregates = json.array({ "RowCount" })
  out.hasDetailRows = false
  out.sortBy, out.topRows = nil, nil
  return out
end

local function count_of(entry)
  local a = entry.aggregates and entry.aggregates.RowCount
  local v = type(a) == "table" and a.value
  if type(v) ~= "number" or v < 0 or v ~= v or v == huge or v ~= floor(v) then return nil end
  return v
end

-- The groups of a planning result: { {value = ISO start or nil (blank), count}, ... } in
-- key order (blank first), and the total; or nil and why (not a count per group).
function P.groups(report, key)
  local gcols = report:grouping_columns()
  if type(gcols) ~= "table" or #gcols ~= 1 or (gcols[1].name and gcols[1].name ~= key) then
    return nil, "the planning run is not grouped on " .. key
  end
  local out, sum = {}, 0
  for _, e in ipairs(report:groups()) do
    if e.is_leaf and e.down_key ~= "T" then
      local g = e.down and e.down[1]
      local n = count_of(e)
      if type(g) ~= "table" or not n then return nil, "a group of the planning run has no row count" end
      local v = g.value
      if v == json.null or v == "" then v = nil end
      if v ~= nil and type(v) ~= "string" then return nil, "a group of the planning run is not a date" end
      out[#out + 1] = { value = v, count = n }
      sum = sum + n
    end
  end
  local total = report:total("RowCount")
  local n = total and tonumber(total.value)
  if n == nil or n ~= sum then return nil, "the planning run's counts do not add up to its total" end
  sort(out, function(a, b)
    if a.value == nil then return b.value ~= nil end
    if b.value == nil then return false end
    return a.value < b.value
  end)
  return out, sum
end

-- The slices: lists of consecutive non-blank groups holding at most `target` rows each
-- (a group over the target alone), as { lo = first group's value or nil (open below),
-- hi = next slice's lo or nil (open above), count }. Blank groups are left out.
function P.cut(groups, target)
  target = target or P.SLICE_TARGET
  local slices, cur = {}, nil
  for _, g in ipairs(groups) do
    if g.value ~= nil then
      if cur and cur.count > 0 and cur.count + g.count > target then
        cur.hi = g.value
        slices[#slices + 1] = cur
        cur = nil
      end
      if not cur then cur = { lo = g.value, count = 0 } end
      cur.count = cur.count + g.count
    end
  end
  if cur then slices[#slices + 1] = cur end
  if #slices == 0 then slices[1] = { lo = nil, count = 0 } end
  slices[1].lo = nil
  return slices
end

-- The pager's work items for a plan: blank keys first (always: rows may have come since),
-- then one "range" item per slice, each with its planned count.
function P.work(groups, key, target)
  local blank = 0
  for _, g in ipairs(groups) do if g.value == nil then blank = blank + g.count end end
  local items = { { kind = "run", conds = { { column = key, operator = "equals", value = "" } }, level = 2,
    planned = blank } }
  for _, s in ipairs(P.cut(groups, target)) do
    local conds = {}
    if s.lo == nil then conds[1] = { column = key, operator = "notEqual", value = "" }
    else conds[1] = { column = key, operator = "greaterOrEqual", value = rowset.filter_value(s.lo) } end
    if s.hi ~= nil then
      conds[#conds + 1] = { column = key, operator = "lessThan", value = rowset.filter_value(s.hi) }
    end
    items[#items + 1] = { kind = "range", conds = conds, level = 1, lo = s.lo, lo_open = false,
      hi = s.hi, hi_open = true, planned = s.count }
  end
  return items
end

-- Runs `list` (run_many entries) with the retry policy's backoff for `limit` errors: the
-- entries that failed with one go again together after the wait, the others keep their
-- results. Returns reports, errs as run_many does.
function P.run_many(client, list, opts, on_wait)
  local reports, errs = client:run_many(list, opts)
  local sender = client.sender
  local tries = type(sender) == "table" and tonumber(sender.retries) or 3
  local base = type(sender) == "table" and tonumber(sender.retry_base) or 0.5
  local settings = type(client.settings) == "table" and client.settings or {}
  for attempt = 1, tries do
    local again, first_err = {}, nil
    for i = 1, #list do
      local e = errs[i]
      if not reports[i] and type(e) == "table" and e.kind == "limit" then
        again[#again + 1] = i
        first_err = first_err or e
      end
    end
    if #again == 0 then break end
    local wait = retry.delay(attempt, first_err, base)
    if not wait then break end
    if on_wait then on_wait(wait, first_err) end
    sleep.choose({}, settings.sleep)(wait)
    local sub = {}
    for j, i in ipairs(again) do sub[j] = list[i] end
    local r2, e2 = client:run_many(sub, opts)
    for j, i in ipairs(again) do reports[i], errs[i] = r2[j], e2[j] end
  end
  return reports, errs
end

-- Streaming the slices (a sliding window in key order). The leading "run"/"range" items
-- of pager.work are queued on pager.stream (sfreports.many.stream, which keeps at most
-- pager.concurrency of them running at the org and starts the next one the moment one
-- finishes) as long as fewer than WINDOW x concurrency are queued, running or finished
-- but not yet read: later slices run while the caller reads the rows of earlier ones,
-- and memory holds at most that many results.
P.WINDOW = 2

local function launch(pager)
  local work = pager.work
  for i = 1, #work do
    if pager.inflight >= P.WINDOW * pager.concurrency then return true end
    local w = work[i]
    if w.kind ~= "run" and w.kind ~= "range" then return true end
    if not w.ticket then
      local md, err = pager:metadata(w.conds, pager.keys[w.level])
      if not md then return nil, err end
      local ok, lerr = pager:count_run()
      if not ok then return nil, lerr end
      w.entry = { id = pager.id, metadata = md }
      w.ticket = pager.stream:add(w.entry)
      pager.inflight = pager.inflight + 1
    end
  end
  return true
end

-- The head item's result, waiting out `limit` errors: the item goes again after the
-- retry policy's backoff (the other slices in flight go on; those refused too wait in
-- turn), at most the client's `retries` times. Returns report | nil, err.
local function take(pager, w)
  local client = pager.client
  local sender = type(client.sender) == "table" and client.sender or {}
  local settings = type(client.settings) == "table" and client.settings or {}
  while true do
    local report, err = pager.stream:take(w.ticket)
    pager.inflight = pager.inflight - 1
    w.ticket = nil
    if report then return report end
    w.limit_tries = (w.limit_tries or 0) + 1
    local wait = type(err) == "table" and err.kind == "limit" and w.limit_tries <= (tonumber(sender.retries) or 3)
      and retry.delay(w.limit_tries, err, tonumber(sender.retry_base) or 0.5)
    if not wait then return nil, err end
    pager.stats.paused = (pager.stats.paused or 0) + 1
    sleep.choose({}, settings.sleep)(wait)
    w.ticket = pager.stream:add(w.entry)
    pager.inflight = pager.inflight + 1
  end
end

-- The next page of the planned work (its head is a "run" or "range" item): the head's
-- rows when it came back complete, else it is cut (pager:split / pager:expand) and the
-- new head is taken. Returns page | nil, err | nil, nil when the head is no longer a
-- slice (the pager goes on with it).
function P.next_page(pager)
  local work = pager.work
  while work[1] and (work[1].kind == "run" or work[1].kind == "range") do
    local ok, lerr = launch(pager)
    if not ok then return nil, lerr end
    local w = work[1]
    local r, err = take(pager, w)
    if not r then return nil, err end
    local stats = pager.stats
    stats.slices_done = stats.slices_done + 1
    table.remove(work, 1)
    if r.all_data then
      local page = pager:make_page(r, w, w.skips)
      ok, lerr = launch(pager)
      if not ok then return nil, lerr end
      return page
    end
    local subs, serr
    if w.kind == "range" then
      stats.splits = stats.splits + 1
      subs, serr = pager:split(w, r, w.lo, w.lo_open, w.hi, w.hi_open)
    else
      subs, serr = pager:expand(w, r)
    end
    if not subs then return nil, serr end
    stats.slices = stats.slices + #subs
    for i = #subs, 1, -1 do table.insert(work, 1, subs[i]) end
  end
  return nil, nil
end

-- Runs the caller's first run (metadata `base`) and the planning run on `key` together.
-- Returns first (report) | nil, err; then the plan { key, granularity, groups, total } or
-- nil and why it failed (a string or error), and the number of runs made. When the day
-- plan fails and the first run's rows span more than DAY_SPAN days, one coarser plan is
-- tried (Month or Year).
function P.first_and_plan(client, report_id, base, key)
  local list = { { id = report_id, metadata = base },
    { id = report_id, metadata = P.metadata(base, key, "Day"), details = false } }
  local reports, errs
  if client.run_many then
    reports, errs = P.run_many(client, list, { max_concurrent_sync = 2 })
  else
    reports, errs = {}, {}
    for i, e in ipairs(list) do
      reports[i], errs[i] = client:run_sync(e.id, { metadata = e.metadata, details = e.details })
    end
  end
  local first = reports[1]
  if not first then return nil, errs[1] end
  local runs, granularity = 2, "Day"
  local planning, perr = reports[2], errs[2]
  if not planning and not first.all_data then
    local g = P.granularity(P.value_span(first, key))
    if g ~= "Day" then
      granularity, runs = g, 3
      planning, perr = client:run_sync(report_id, { metadata = P.metadata(base, key, g), details = false })
    end
  end
  if not planning then return first, nil, perr, runs end
  local groups, total = P.groups(planning, key)
  if not groups then return first, nil, total, runs end
  return first, { key = key, granularity = granularity, groups = groups, total = total }, nil, runs
end

return P
