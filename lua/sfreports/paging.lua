-- sfreports.paging: every row of a report past the API's 2,000-row cap
-- (salesforce-analytics-api.md §8), as one stream, each row exactly once.
--
--   local paged = assert(client:run_all(id, { filters = {...}, logic = "1 OR 2" }))
--   for row in paged:rows() do ... end            -- fetches page by page, lazily
--   if paged.error then ... end                    -- set when a page failed (rows stop)
--   local n, err = paged:write("csv", io.stdout)   -- or stream into a writer
--   client:run_all(id, { on_page = function(rows, info) ... end })  -- eager, page by page
--
-- How. The caller's run goes first (filters merged with the saved ones by
-- filters.prepare). When it comes back complete, that is the only page. Otherwise the
-- rows are split on paging keys: columns whose type orders and compares (date, datetime,
-- int, double, percent, currency), filterable, never a name/lookup column (their values
-- are record ids while filters apply to the name). `opts.key` names the key ("COL") or
-- the exact list of keys ({"COL1", "COL2"}); by default the ordered columns of the
-- report are ranked by how many distinct values they show in the first run (most first).
-- A key column missing from the detail columns is appended to them (`paged.added_columns`;
-- it shows up in columns() and in every row).
--
-- Every page filter holds RAW values (currency amounts, ISO dates, numbers; never the
-- locale label) and is ANDed onto the caller's filters with filters.merge (logic
-- renumbered and wrapped; the 20-filter cap holds). Three strategies:
--   planned (TABULAR with a date/datetime key, default; sfreports.paging.plan): a planning
--     run counts the rows per day of the key, slices of <= 1,500 rows run in a sliding
--     window of `concurrency`; falls back to keyset when the key cannot be planned.
--   keyset (TABULAR): sortBy the key, then `key >= last value seen`. Rows at the
--     boundary value were partly emitted already: they are dropped by a multiset of whole
--     rows (every cell's value and label), so identical rows are neither lost nor doubled.
--     A page holding a single key value that is still truncated is split on the next
--     key (`key = v` then keyset on key 2), then paging goes on with `key > v`.
--   ranges (SUMMARY/MATRIX, default; or opts.strategy = "ranges"): a truncated slice is
--     cut at quantiles of the key values it returned into ceil(RowCount / 1,500) slices
--     (at least two; never fixed windows) and each slice is run again; slices run
--     concurrently through client:run_many (opts.concurrency, default 8; at most 20, the
--     API's concurrent sync limit) and are emitted in key order. A slice of one value
--     moves to the next key. Summary/matrix rows keep their groups (value and label;
--     `key` paths like "0_1" are per page). Keyset cannot page a summary: Salesforce
--     orders its detail rows by group first, so the 2,000 rows are not a key prefix.
-- Rows whose key is blank are fetched apart (`key = ""`), then split on the next key.
-- Each keyset page is checked to come back in key order at or past the filter value; a
-- server whose sort disagrees with its filter (e.g. a currency key in a multi-currency
-- org, compared in another currency) gives an `api` error naming the key, never a gap.
-- Never a silent truncation: when rows cannot be split further (more than 2,000 rows
-- alike on every key) the stream stops with an error of kind `limit`; `paged.all_data`
-- is true only once every page has been fetched.
--
-- Aggregates: `paged.report` is the caller's own (first) run. Its fact-map aggregates
-- and grouping tree cover every row (the cap only truncates detail rows), so totals and
-- subtotals come from there; the page reports handed to on_page carry per-page aggregates.
-- Order: by key (blank keys first), then as the server returns ties; the caller's `sort`
-- and `top` options do not apply (misuse). Memory: one page (ranges: up to `concurrency`
-- pages) plus the first run, whatever the report size.
--
-- Parts: paging.keys (which columns can page, ranked), paging.rowset (key values and
-- multisets of whole rows), paging.paged (the object run_all returns); this file holds
-- the pager (work items, splitting, keyset steps) and run_all.
local errors = require "sfreports.errors"
local options = require "sfreports.options"
local filters = require "sfreports.filters"
local RO = require "sfreports.run_options"
local json = require "sfreports.json"
local rowset = require "sfreports.paging.rowset"
local K = require "sfreports.paging.keys"
local Paged = require "sfreports.paging.paged"
local Plan = require "sfreports.paging.plan"
local Many = require "sfreports.many"

local type, pairs, ipairs, tostring, tonumber, setmetatable, error =
  type, pairs, ipairs, tostring, tonumber, setmetatable, error
local format, concat, sort, insert, remove = string.format, table.concat, table.sort, table.insert, table.remove
local floor, ceil, min, max = math.floor, math.ceil, math.min, math.max

local key_value, filter_value = rowset.key_value, rowset.filter_value
local take, taken, plus, rows_at = rowset.take, rowset.taken, rowset.plus, rowset.rows_at
local rank_keys, describe_key, caller_keys = K.rank_keys, K.describe_key, K.caller_keys
local index_of = K.index_of

local M = {}
M.Paged = Paged

M.ROW_LIMIT = 2000          -- detail rows per run (§8)
M.SLICE_TARGET = 1500       -- rows aimed at per range slice (margin under the cap)
M.DEFAULT_CONCURRENCY = 8
M.MAX_CONCURRENCY = 20      -- concurrent synchronous runs per org (§8)
M.DEFAULT_MAX_RUNS = 500    -- synchronous runs per org per hour (§8)


---------------------------------------------------------------------------------------
-- small helpers

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local function limit_error(msg, fields)
  return errors.new("limit", msg, fields)
end

---------------------------------------------------------------------------------------
-- the pager

local Pager = {}
Pager.__index = Pager

-- Report metadata for one page: the base plus page filters (ANDed, logic wrapped).
function Pager:metadata(conds, sort_key)
  local md = copy(self.base)
  local list = {}
  for i, c in ipairs(conds) do list[i] = { column = c.column, operator = c.operator, value = c.value } end
  local rf, logic = filters.merge(self.base.reportFilters, self.base.reportBooleanFilter, list, nil)
  if not rf then
    return nil, errors.new("limit", "cannot page this report: " .. logic.message
      .. " (paging adds its own filters)", { option = "filters" })
  end
  md.reportFilters, md.reportBooleanFilter = rf, logic
  if sort_key then
    md.sortBy = json.array({ { sortColumn = sort_key, sortOrder = "asc" } })
  end
  md.hasDetailRows = true
  return md
end

function Pager:count_run(n)
  self.stats.runs = self.stats.runs + (n or 1)
  if self.stats.runs > self.max_runs then
    return nil, limit_error(format("paging needed more than %d runs (max_runs)", self.max_runs),
      { runs = self.stats.runs })
  end
  return true
end

function Pager:run(conds, sort_key)
  local md, err = self:metadata(conds, sort_key)
  if not md then return nil, err end
  local ok, lerr = self:count_run()
  if not ok then return nil, lerr end
  return self.client:run_sync(self.id, { metadata = md })
end

-- Runs several slices together (client:run_many when there is one).
function Pager:run_batch(items)
  if #items == 1 or not self.client.run_many then
    local out = {}
    for i, item in ipairs(items) do
      local r, err = self:run(item.conds, self.keys[item.level])
      if not r then return nil, err end
      out[i] = r
    end
    return out
  end
  local list = {}
  for i, item in ipairs(items) do
    local md, err = self:metadata(item.conds, self.keys[item.level])
    if not md then return nil, err end
    list[i] = { id = self.id, metadata = md }
  end
  local ok, lerr = self:count_run(#items)
  if not ok then return nil, lerr end
  local reports, errs = Plan.run_many(self.client, list, { max_concurrent_sync = self.concurrency })
  for i = 1, #items do
    if not reports[i] then return nil, errs[i] end
  end
  return reports
end

local function key_index(report, name)
  for i, col in ipairs(report:columns()) do
    if col.name == name then return i end
  end
  return nil
end

function Pager:page_key_index(report, name)
  local ki = key_index(report, name)
  if not ki then
    return nil, errors.new("api", format("the page result has no column %s to page on", name),
      { report_id = self.id })
  end
  return ki
end

-- Turns a page report into a page { rows, report, conds, level }, without the rows held
-- by the skip multisets: `skips` inherited from split keyset boundaries, `boundary` the
-- keyset item's own.
function Pager:make_page(report, item, skips, boundary)
  local rows = {}
  for row in report:rows() do
    if taken(skips, row) or take(boundary, row) then
      self.stats.duplicates = self.stats.duplicates + 1
    else
      rows[#rows + 1] = row
    end
  end
  return { rows = rows, report = report, conds = item.conds, level = item.level }
end

-- Conditions of `item` plus one more.
local function with(conds, column, operator, value)
  local out = {}
  for i, c in ipairs(conds) do out[i] = c end
  out[#out + 1] = { column = column, operator = operator, value = value }
  return out
end

-- A truncated result for `item`: the work items that replace it (blank keys first).
function Pager:expand(item, report)
  local key = self.keys[item.level]
  if not key then
    local desc = {}
    for _, c in ipairs(item.conds) do desc[#desc + 1] = c.column .. " " .. c.operator .. " " .. c.value end
    return nil, limit_error(format("more than %d rows are alike on every paging key (%s); they cannot be "
      .. "fetched completely: add a filter, or give more keys with opts.key", M.ROW_LIMIT, concat(desc, ", ")),
      { report_id = self.id, keys = self.keys })
  end
  self.stats.splits = self.stats.splits + 1
  local out = { { kind = "run", conds = with(item.conds, key, "equals", ""), level = item.level + 1,
    skips = item.skips } }
  if self.strategy == "keyset" then
    out[2] = { kind = "keyset", conds = item.conds, level = item.level, skips = item.skips }
    return out
  end
  local ranges, err = self:split(item, report, nil, nil, nil, nil)
  if not ranges then return nil, err end
  for _, r in ipairs(ranges) do out[#out + 1] = r end
  return out
end

-- Range slices of item (non-blank key values in [lo, hi] with open ends flagged), cut at
-- quantiles of the key values the truncated `report` returned.
function Pager:split(item, report, lo, lo_open, hi, hi_open)
  local key = self.keys[item.level]
  local ki, kerr = self:page_key_index(report, key)
  if not ki then return nil, kerr end
  local values = {}
  for row in report:rows() do
    local v = key_value(row.data_cells[ki])
    if v ~= nil then values[#values + 1] = v end
  end
  sort(values)
  local total = report:total("RowCount")
  local n = total and tonumber(total.value) or nil
  local parts = max(2, n and ceil(n / M.SLICE_TARGET) or 2)
  local cuts = {}
  for i = 1, parts - 1 do
    local v = values[floor(i * #values / parts) + 1]
    if v ~= nil and (lo == nil or v > lo) and (hi == nil or v <= hi) and v ~= cuts[#cuts] then
      cuts[#cuts + 1] = v
    end
  end
  local base = item.conds
  local function slice(a, a_open, b, b_open)
    local conds = base
    if a == nil then conds = with(conds, key, "notEqual", "")
    else conds = with(conds, key, a_open and "greaterThan" or "greaterOrEqual", filter_value(a)) end
    if b ~= nil then conds = with(conds, key, b_open and "lessThan" or "lessOrEqual", filter_value(b)) end
    return { kind = "range", conds = conds, level = item.level, lo = a, lo_open = a_open, hi = b,
      hi_open = b_open, skips = item.skips }
  end
  local out = {}
  if #cuts == 0 then
    -- every value seen is the lower bound (or none was seen): that value alone, then the rest
    local v = values[1]
    if v == nil then
      return nil, errors.new("api", format("a truncated page returned no %s values to split on", key),
        { report_id = self.id })
    end
    out[1] = { kind = "run", conds = with(base, key, "equals", filter_value(v)), level = item.level + 1,
      skips = item.skips }
    out[2] = slice(v, true, hi, hi_open)
    return out
  end
  out[1] = slice(lo, lo_open, cuts[1], true)
  for i = 2, #cuts do out[#out + 1] = slice(cuts[i - 1], false, cuts[i], true) end
  out[#out + 1] = slice(cuts[#cuts], false, hi, hi_open)
  return out
end

-- The filters of the next keyset page of `item`: every non-blank key value at first, then
-- past the last value seen (`>=` while its rows are held in the boundary to drop again,
-- `>` once that value was paged apart on the next key).
local function keyset_conds(item, key)
  if item.last == nil then return with(item.conds, key, "notEqual", "") end
  return with(item.conds, key, item.inclusive and "greaterOrEqual" or "greaterThan", filter_value(item.last))
end

-- The first and last key values (column ki) of a keyset page, after checking that the
-- server's order agrees with its filter (else rows would be lost): every value present,
-- none below `after`, never decreasing. Or nil, nil and an `api` error naming the key.
function Pager:keyset_bounds(report, ki, key, after)
  local first, last, prev
  for row in report:rows() do
    local v = key_value(row.data_cells[ki])
    if v == nil or (after ~= nil and v < after) or (prev ~= nil and v < prev) then
      return nil, nil, errors.new("api", format("the rows of a page are not in %s order (value %s after %s); "
        .. "this key cannot page the report: choose another with opts.key", key, tostring(v),
        tostring(prev or after)), { report_id = self.id })
    end
    if first == nil then first = v end
    prev, last = v, v
  end
  return first, last
end

-- One keyset page of `item` (stays at the head of the work list until done).
function Pager:keyset_step(item)
  local key = self.keys[item.level]
  local conds = keyset_conds(item, key)
  local report, err = self:run(conds, key)
  if not report then return nil, err end
  local ki, kerr = self:page_key_index(report, key)
  if not ki then return nil, kerr end
  local first, last, oerr = self:keyset_bounds(report, ki, key, item.last)
  if oerr then return nil, oerr end
  if report.all_data then
    item.done = true
    return self:make_page(report, { conds = conds, level = item.level }, item.skips, item.boundary), nil
  end
  if first == nil then
    return nil, errors.new("api", "a truncated page returned no rows", { report_id = self.id })
  end
  if first == last then
    -- One value fills the page: that value alone on the next key, then past it. Rows of
    -- that value emitted already are in the boundary (or in skips from levels above).
    local skips = plus(item.skips, item.boundary)
    item.last, item.inclusive, item.boundary = first, false, nil
    return nil, nil, { kind = "run", conds = with(item.conds, key, "equals", filter_value(first)),
      level = item.level + 1, skips = skips }
  end
  local page = self:make_page(report, { conds = conds, level = item.level }, item.skips, item.boundary)
  -- The rows at the new boundary value come again on the next page. All of them have
  -- been emitted by now (here, or earlier when they were dropped here as duplicates), so
  -- the boundary is every row of the page at that value, not only the ones emitted here.
  item.last, item.inclusive, item.boundary = last, true, rows_at(report, ki, last)
  return page
end

-- The next page of rows to emit, or nil when done (self.done) or on error (nil, err).
function Pager:next_page()
  local work = self.work
  while #work > 0 do
    local item = work[1]
    if item.kind == "page" then
      remove(work, 1)
      return item.page
    elseif self.stream then
      -- planned ranges: slices streamed in a sliding window (sfreports.paging.plan)
      local page, err = Plan.next_page(self)
      if err then return nil, err end
      if page then return page end
    elseif item.kind == "keyset" then
      local page, err, sub = self:keyset_step(item)
      if err then return nil, err end
      if item.done then remove(work, 1) end
      if sub then insert(work, 1, sub) end
      if page then return page end
    else
      -- "run" and "range" items at the head run together, up to `concurrency` of them
      local batch = {}
      for i = 1, #work do
        local w = work[i]
        if (w.kind ~= "run" and w.kind ~= "range") or #batch >= self.concurrency then break end
        batch[#batch + 1] = w
      end
      local reports, err = self:run_batch(batch)
      if not reports then return nil, err end
      local replaced = {}
      for i, w in ipairs(batch) do
        local r = reports[i]
        self.stats.slices_done = self.stats.slices_done + 1
        if r.all_data then
          replaced[#replaced + 1] = { kind = "page", page = self:make_page(r, w, w.skips) }
        else
          local subs, serr
          if w.kind == "range" then
            self.stats.splits = self.stats.splits + 1
            subs, serr = self:split(w, r, w.lo, w.lo_open, w.hi, w.hi_open)
          else
            subs, serr = self:expand(w, r)
          end
          if not subs then return nil, serr end
          self.stats.slices = self.stats.slices + #subs
          for _, s in ipairs(subs) do replaced[#replaced + 1] = s end
        end
      end
      for _ = 1, #batch do remove(work, 1) end
      for i = #replaced, 1, -1 do insert(work, 1, replaced[i]) end
    end
  end
  self.done = true
  return nil
end

---------------------------------------------------------------------------------------
-- entry point

local function check_options(opts)
  if type(opts) == "table" then
    for _, k in ipairs({ "sort", "top" }) do
      if opts[k] ~= nil then
        error(format("sfreports: run_all orders rows by its paging key, so '%s' cannot apply; "
          .. "choose the key with opts.key", k), 3)
      end
    end
  end
  opts = options.check(opts, options.RUN_ALL, "run_all", 2)
  if opts.details == false then error("sfreports: run_all returns detail rows; details = false cannot apply", 3) end
  local st = opts.strategy
  if st ~= nil and st ~= "keyset" and st ~= "ranges" and st ~= "planned" then
    error("sfreports: run_all strategy must be \"planned\", \"keyset\" or \"ranges\"", 3)
  end
  if type(opts.key) == "table" then
    if #opts.key == 0 then error("sfreports: run_all key must name at least one column", 3) end
    for _, k in ipairs(opts.key) do
      if type(k) ~= "string" then error("sfreports: run_all key must be a column name or a list of them", 3) end
    end
  end
  return opts
end

local function detail_columns(md, describe)
  local cols = md.detailColumns
  if type(cols) ~= "table" then
    local saved = describe.reportMetadata
    cols = type(saved) == "table" and saved.detailColumns or {}
  end
  local out = {}
  for i, c in ipairs(cols) do out[i] = c end
  return out
end

-- The metadata of the caller's run: opts.metadata, overridden by the changes its filter
-- options make to the saved report (filters.prepare), with detail rows on. Or nil and
-- the error.
local function run_metadata(opts, describe)
  local prep = {}
  for _, k in ipairs(RO.OPTIONS) do prep[k] = opts[k] end
  local changes, perr = RO.prepare(prep, describe)
  if not changes then return nil, perr end
  local base = {}
  for k, v in pairs(opts.metadata or {}) do base[k] = v end
  for k, v in pairs(changes) do base[k] = v end
  base.hasDetailRows = true
  return base
end

local function add_missing(columns, added, name)
  if not index_of(columns, name) then
    columns[#columns + 1] = name
    added[#added + 1] = name
  end
end

-- Makes the run show its key columns: the keys missing from the detail columns, or, with
-- no key given and no detail column usable as one, the describe's best candidate, are
-- appended to base.detailColumns. Returns the list of the added columns.
local function add_key_columns(base, describe, keys)
  local columns = detail_columns(base, describe)
  local added = {}
  for _, k in ipairs(keys) do add_missing(columns, added, k) end
  if #keys == 0 and #rank_keys(describe, columns, nil) == 0 then
    local k = describe_key(describe)
    if k then add_missing(columns, added, k) end
  end
  if #added > 0 then base.detailColumns = json.array(columns) end
  return added
end

-- opts.strategy, else keyset for a TABULAR report and ranges for the others. Or nil and
-- the error when keyset is asked of a report that is not TABULAR.
local function choose_strategy(strategy, format_name)
  strategy = strategy or (format_name == "TABULAR" and "keyset" or "ranges")
  if strategy == "keyset" and format_name ~= "TABULAR" then
    return nil, errors.invalid("keyset paging needs a TABULAR report (Salesforce orders summary rows by "
      .. "group first); use strategy = \"ranges\"", { option = "strategy" })
  end
  return strategy
end

-- A joined report can be paged only when its first run is complete. Or nil and the error.
local function check_pageable(first, report_id)
  if first.format == "MULTI_BLOCK" and not first.all_data then
    return nil, errors.invalid("a joined (MULTI_BLOCK) report cannot be paged", { report_id = report_id })
  end
  return true
end

local function new_paged(first, strategy, keys, added, runs)
  return setmetatable({
    report = first, all_data = false, error = nil, strategy = strategy, keys = keys,
    added_columns = added, stats = { runs = runs or 1, pages = 0, rows = 0, duplicates = 0, splits = 0,
      slices = 0, slices_done = 0 },
  }, Paged)
end

-- The pager behind `paged` (its keys and work are set by seed_work).
local function new_pager(client, report_id, opts, base, paged)
  return setmetatable({
    client = client, id = report_id, base = base, strategy = paged.strategy, stats = paged.stats,
    concurrency = min(opts.concurrency or M.DEFAULT_CONCURRENCY, M.MAX_CONCURRENCY,
      type(client.settings) == "table" and tonumber(client.settings.max_concurrent_sync) or M.MAX_CONCURRENCY),
    max_runs = opts.max_runs or M.DEFAULT_MAX_RUNS, work = {},
  }, Pager)
end

-- Appends to `keys` (in place) the report's usable detail columns not in it yet, ranked
-- by the distinct values they show in the first run.
local function add_ranked_keys(keys, describe, base, first)
  for _, k in ipairs(rank_keys(describe, detail_columns(base, describe), first)) do
    if not index_of(keys, k) then keys[#keys + 1] = k end
  end
end

-- The pager's first work: the first run as the only page when it is complete; else the
-- items that split it on the keys (the caller's list as given, or completed by ranking).
-- True, or nil and the error (a `limit` one when there is no key at all).
local function seed_work(pager, first, describe, keys, explicit, plan)
  if first.all_data then
    pager.work[1] = { kind = "page", page = pager:make_page(first, { conds = {}, level = 1 }) }
    return true
  end
  if not explicit then add_ranked_keys(keys, describe, pager.base, first) end
  if plan then
    -- planned ranges (sfreports.paging.plan): the slices of the plan, blank keys first
    pager.keys = keys
    pager.work = Plan.work(plan.groups, keys[1], M.SLICE_TARGET)
    pager.stats.slices = #pager.work
    if pager.client.run_many then
      pager.stream = Many.stream(pager.client, { max_concurrent_sync = pager.concurrency })
      pager.inflight = 0
    end
    return true
  end
  if #keys == 0 then
    return nil, limit_error("the report returns more than 2,000 rows and has no column to page on "
      .. "(a filterable date, datetime, number, percent or currency column); add one with opts.key",
      { report_id = pager.id })
  end
  pager.keys = keys
  local subs, err = pager:expand({ conds = {}, level = 1 }, first)
  if not subs then return nil, err end
  pager.work = subs
  return true
end

-- Runs the report with every row (see the header). Returns a Paged object (rows still to
-- come unless the first run was complete, or on_page was given: then all pages were
-- handed over already), or nil and an error.
function M.run_all(client, report_id, opts)
  opts = check_options(opts)
  local describe, derr = client:describe(report_id, { cached = true })
  if not describe then return nil, derr end
  local base, berr = run_metadata(opts, describe)
  if not base then return nil, berr end
  -- keys: the caller's, or the report's ordered columns (ranked after the first run)
  local explicit = type(opts.key) == "table"
  local keys, kerr = caller_keys(opts.key, describe)
  if not keys then return nil, kerr end
  local added = add_key_columns(base, describe, keys)

  -- planned ranges: the first run and the planning run go out together
  local plan_key = Plan.key(opts.strategy, describe, #keys > 0 and { keys[1] } or detail_columns(base, describe),
    K.unusable)
  local first, ferr, plan, perr, runs
  if plan_key then
    first, plan, perr, runs = Plan.first_and_plan(client, report_id, base, plan_key)
    if not first then return nil, plan end
    if plan and #keys == 0 then keys[1] = plan_key end
  else
    first, ferr = client:run_sync(report_id, { metadata = base })
    if not first then return nil, ferr end
  end
  local strategy, serr = choose_strategy(opts.strategy ~= "planned" and opts.strategy or nil, first.format)
  if not strategy then return nil, serr end
  if plan then strategy = "planned" end
  local ok, jerr = check_pageable(first, report_id)
  if not ok then return nil, jerr end

  local paged = new_paged(first, strategy, keys, added, runs)
  paged.plan, paged.plan_error = plan and { key = plan.key, granularity = plan.granularity,
    groups = #plan.groups, rows = plan.total } or nil, perr
  local pager = new_pager(client, report_id, opts, base, paged)
  paged._pager, paged.on_progress = pager, opts.on_progress
  local seeded, werr = seed_work(pager, first, describe, keys, explicit, plan)
  if not seeded then return nil, werr end
  if opts.on_page then
    local done, err = paged:each_page(opts.on_page)
    if not done then return nil, err end
  end
  return paged
end

return M
