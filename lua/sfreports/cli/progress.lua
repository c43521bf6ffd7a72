-- sfreports.cli.progress: the progress line of `run --all` on a terminal (standard
-- error, rewritten in place): slices done / planned and rows so far for planned ranges,
-- pages and rows for the other strategies. Off with --quiet or when standard error is
-- not a terminal (then --progress prints one line per page).
local format = string.format

local P = {}

-- 12345 -> "12,345"
local function thousands(n)
  local s = format("%d", n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end
P.thousands = thousands

-- The text of one progress line for paged.stats and its strategy.
function P.line(stats, strategy)
  if strategy == "planned" and (stats.slices or 0) > 0 then
    return format("sfreports: --all: %d/%d slices, %s rows", stats.slices_done or 0, stats.slices,
      thousands(stats.rows or 0))
  end
  return format("sfreports: --all: %d page%s, %s rows", stats.pages or 0, stats.pages == 1 and "" or "s",
    thousands(stats.rows or 0))
end

-- run_all's on_progress for a CLI session `s`, or nil when no progress is shown.
function P.paging(s)
  if s.o.quiet then return nil end
  local tty = s:is_tty()
  if not (tty or s.o.progress) then return nil end
  local stderr = s.stderr
  return function(stats, paged, final)
    local line = P.line(stats, paged.strategy)
    if tty then
      stderr:write("\r", line, "\027[K", final and "\n" or "")
    elseif final then
      stderr:write(line, "\n")
    end
  end
end

return P
