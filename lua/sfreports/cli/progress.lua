-- sfreports.cli.progress: what the CLI shows while a run takes long, on standard error:
-- the wait for an asynchronous run (run --async, fetch --wait) with its poll line, and the
-- progress line of `run --all`. On a terminal a line is rewritten in place; with
-- --progress, one line per update; never with --quiet. Loaded only by those runs.
local type, tostring, pcall, error = type, tostring, pcall, error
local format = string.format

local P = {}

-- 12345 -> "12,345"
local function thousands(n)
  local s = format("%d", n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end
P.thousands = thousands

-- The text of the progress line of `run --all`: rows written, pages read and report runs
-- made so far, the slices done / planned for planned ranges (paged.stats, paged.strategy),
-- and the seconds since the command started paging.
function P.line(rows, stats, strategy, seconds)
  local runs = stats.runs or 0
  local text = format("sfreports: --all: %s rows, %d page%s, %d report run%s", thousands(rows or 0),
    stats.pages or 0, stats.pages == 1 and "" or "s", runs, runs == 1 and "" or "s")
  if strategy == "planned" and (stats.slices or 0) > 0 then
    text = text .. format(", %d/%d slices", stats.slices_done or 0, stats.slices)
  end
  return text .. format(", %.1f s", seconds or 0)
end

local function progress_fn(self)
  local o = self.o
  if o.quiet then return nil end
  local tty = self:is_tty()
  if not (tty or o.progress) then return nil end
  local stderr = self.stderr
  return function(inst, elapsed, final)
    local polls = inst.polls or 0
    -- the status comes from the server: scrubbed like every message
    local line = self:scrub(format("sfreports: instance %s %s, %.1fs, %d poll%s", tostring(inst.id),
      tostring(inst.status), elapsed, polls, polls == 1 and "" or "s"))
    if tty then
      stderr:write("\r", line, "\027[K", final and "\n" or "")
    else
      stderr:write(line, "\n")
    end
  end
end

-- The progress of --all on a terminal (or with --progress): one line, rewritten in place
-- on a terminal, updated when a page arrives: "sfreports: --all: 4,000 rows, 3 pages, 4
-- report runs, 2.1 s". A function(final) for Session:write_rows, or nil (not a terminal,
-- --quiet). Nothing of it reaches standard output. (self: the CLI session)
function P.paging(self, paged)
  local o = self.o
  if o.quiet or type(paged) ~= "table" or type(paged.stats) ~= "table" then return nil end
  local tty = self:is_tty()
  if not (tty or o.progress) then return nil end
  local stderr, core = self.stderr, require "sfreports.core"
  local clock = self.clock or core.monotime
  local start, last_pages, shown = clock(), -1, false
  return function(final)
    local st = paged.stats
    if not final and st.pages == last_pages then return end
    last_pages = st.pages
    if final and not shown then return end
    shown = true
    local line = P.line(st.rows, st, paged.strategy, clock() - start)
    if tty then
      stderr:write("\r", line, "\027[K", final and "\n" or "")
    elseif not final then
      stderr:write(line, "\n")
    end
  end
end

-- Waits for the instance with the library's schedule; its sleep hook prints the progress
-- (the instance's status and poll count are current whenever it sleeps). Returns the
-- report, or nil and an error.
function P.wait(self, client, inst)
  local core = require "sfreports.core"
  local clock = self.clock or core.monotime
  local sleep = self.sleep or core.sleep
  local progress = progress_fn(self)
  local start = clock()
  local opts = { timeout = self:time_left() } -- what is left of --timeout
  opts.sleep = function(seconds)
    if progress then progress(inst, clock() - start, false) end
    local ok, e = pcall(sleep, seconds)
    if not ok then
      -- Ctrl-C while sleeping: remembered here, whatever the library makes of the error
      if require("sfreports.cli.session").is_interrupt(e) then self.interrupted = true end
      error(e, 0)
    end
  end
  -- while it waits, Ctrl-C names (or deletes) this instance: see cli.main
  self.pending = { report_id = inst.report_id, id = inst.id }
  local report, err = client:wait(inst, opts)
  self.pending = nil
  if progress and ((inst.polls or 0) > 0) then progress(inst, clock() - start, true) end
  if not report and type(err) == "table" and err.kind == "timeout" and not err.deleted then
    err.message = tostring(err.message) .. format("; from the command line: sfreports fetch %s %s --wait",
      tostring(inst.report_id), tostring(inst.id))
  end
  return report, err
end

return P
