-- sfreports.cli.progress: the text of the progress line of `run --all` (shown by
-- Session:paging_progress in sfreports.cli.commands: on a terminal, rewritten in place;
-- with --progress, one line per page; never with --quiet).
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

return P
