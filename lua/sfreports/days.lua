-- sfreports.days (leaf): civil dates as day numbers, days since 1970-01-01 (proleptic
-- Gregorian; Howard Hinnant's days_from_civil). Used by sfreports.reuse (the time of an
-- instance) and sfreports.paging.plan (the span of a key).
local floor, tonumber, type, match = math.floor, tonumber, type, string.match

local M = {}

-- Days since 1970-01-01 of the civil date y-m-d (numbers).
function M.from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Days since 1970-01-01 of an ISO date (or the date part of a datetime), or nil.
function M.of_iso(s)
  if type(s) ~= "string" then return nil end
  local y, m, d = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)")
  if not y then return nil end
  return M.from_civil(tonumber(y), tonumber(m), tonumber(d))
end

return M
