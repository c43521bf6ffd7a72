-- spec/support/paging_truth.lua: the ground truth of the paging specs (paging_spec,
-- paging_plan_spec): a report's rows as a multiset, taken by another route than paging.
--   local truth = require "paging_truth"
--   truth.tuple(row)          -- a row as a string: every cell and group (value and label)
--   truth.add(set, row)       -- counts row into the multiset set ({ tuple = count })
--   truth.collect(client, id, windows, o) -- set, n: one run_sync per window of CLOSE_DATE
--                             --   ({ from =, to = }, standard date filter) with run options
--                             --   o; each window must come back complete
--   truth.caller_filters()    -- the callers' filters and logic the specs page with
--   truth.assert_same(truth_set, expected, got_set, n) -- got equals the ground truth exactly,
--                             --   and the case is past the 2,000-row cap
local assert = require "luassert"
local json = require "sfreports.json"
local F = require "sfreports.filters"

local M = {}

function M.tuple(row)
  local parts = { json.encode(row.data_cells) }
  for i, g in ipairs(row.groups) do parts[#parts + 1] = json.encode({ g.value, g.label, i }) end
  return table.concat(parts, "|")
end

function M.add(set, row)
  local t = M.tuple(row)
  set[t] = (set[t] or 0) + 1
end

function M.collect(client, id, windows, o)
  local set, n = {}, 0
  for _, w in ipairs(windows) do
    assert.is_true(w.from ~= nil or w.to ~= nil)
    local opts = { date_filter = { column = "CLOSE_DATE", from = w.from, to = w.to } }
    for k, v in pairs(o or {}) do opts[k] = v end
    local report = assert(client:run_sync(id, opts))
    assert.is_true(report.all_data, "ground-truth window " .. tostring(w.from or w.to) .. " is truncated")
    for row in report:rows() do
      M.add(set, row)
      n = n + 1
    end
  end
  return set, n
end

function M.caller_filters()
  return {
    filters = { F.ne("STAGE_NAME", "Closed Lost"), F.gt("AMOUNT", 20000), F.eq("TYPE", "New Customer") },
    logic = "(1 OR 3) AND 2",
  }
end

function M.assert_same(truth, expected, got, n)
  assert.is_true(expected > 2000, "the case must be past the cap")
  assert.equal(expected, n)
  for t, c in pairs(truth) do
    if got[t] ~= c then error(string.format("row %s: expected %d, got %s", t:sub(1, 200), c, tostring(got[t]))) end
  end
  for t, c in pairs(got) do
    if truth[t] ~= c then error(string.format("extra row %s (%d)", t:sub(1, 200), c)) end
  end
end

return M
