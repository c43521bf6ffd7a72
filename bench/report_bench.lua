-- bench/report_bench.lua: cost of turning a decoded report result into CSV, against the
-- cost of decoding the same JSON body with lua-cjson in the same run.
--
--   lua5.4 bench/report_bench.lua [repetitions]      (also lua5.1, lua5.3, luajit)
--
-- Two synthetic, deterministic bodies are generated here (no network, no fixtures):
--   * tabular: 2,000 rows x 25 columns of mixed types (strings with commas/quotes/newlines,
--     record ids under names, picklists, currency objects, numbers, percents, dates,
--     datetimes, booleans, about 8% nulls), the shape Execute Sync returns;
--   * summary3: a 3-level SUMMARY (12 x 6 x 5 groups, 1-9 rows per leaf, 15 columns)
--     with subtotals and two aggregates per fact-map entry.
-- Each repetition times, interleaved: cjson.decode(body) (the baseline), then
-- report.new(decoded) + writers.csv(...) into a sink that discards (label mode), and the
-- same in raw mode and as JSON Lines. Times are CPU seconds (os.clock); medians are shown.
-- Memory: "decoded" is what the decoded table retains. For the CSV write (label mode),
-- "peak" is the highest collectgarbage("count") seen during writing (sampled at every
-- sink call) above the level before writing, with the collector running normally (it
-- mostly shows garbage not yet collected); "alloc" is everything the write allocated
-- (collector stopped); "live" is the most memory the write held on to, sampled after a
-- full collection every 100 rows (what streaming keeps bounded).
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path

local cjson = require "cjson"
local report = require "sfreports.report"
local writers = require "sfreports.writers"

local REPS = tonumber(arg and arg[1]) or 15
local clock, format, concat = os.clock, string.format, table.concat
local null = cjson.null

---------------------------------------------------------------------------------------
-- deterministic data

local seed = 42
local function rand(n) -- 1..n, Park-Miller (exact in doubles and in 5.3+ integers)
  seed = (seed * 16807) % 2147483647
  return seed % n + 1
end

local WORDS = { "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell",
  "Cyberdyne", "Soylent", "Wonka", "Gringotts", "Müller GmbH", "Société Générale", "東京商事",
  "Oceanic", "Vandelay", "Dunder Mifflin", "Pied Piper", "Aperture" }
local PICK = { "Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
  "Closed Won", "Closed Lost" }
local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

local function fake_id(prefix)
  local t = { prefix }
  for _ = 1, 15 do
    local k = rand(#ALNUM)
    t[#t + 1] = ALNUM:sub(k, k)
  end
  return concat(t)
end

local function money_label(n)
  local s = format("%.2f", n)
  local int, frac = s:match("^(%d+)%.(%d+)$")
  int = int:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return "$" .. int .. "." .. frac
end

-- The 25 column kinds of the tabular body (cycled for other widths).
local KINDS = { "name", "string", "picklist", "currency", "double", "int", "percent", "date",
  "datetime", "email", "phone", "boolean", "reference", "textarea", "string", "currency",
  "picklist", "int", "date", "string", "double", "name", "string", "percent", "textarea" }

local DATA_TYPE = { name = "string", textarea = "textarea", reference = "reference" }

local function cell(kind)
  if rand(100) <= 8 then return { value = null, label = "-" } end
  if kind == "name" or kind == "reference" then
    return { value = fake_id("001"), label = WORDS[rand(#WORDS)] .. " " .. rand(999) }
  elseif kind == "string" then
    local s = WORDS[rand(#WORDS)] .. " " .. WORDS[rand(#WORDS)]
    return { value = s, label = s }
  elseif kind == "picklist" then
    local s = PICK[rand(#PICK)]
    return { value = s, label = s }
  elseif kind == "currency" then
    local n = rand(10000000) / 100
    return { value = { amount = n, currency = "USD" }, label = money_label(n) }
  elseif kind == "double" then
    local n = rand(1000000) / 1000
    return { value = n, label = format("%.3f", n) }
  elseif kind == "int" then
    local n = rand(5000)
    return { value = n, label = tostring(n) }
  elseif kind == "percent" then
    local n = rand(100)
    return { value = n, label = n .. "%" }
  elseif kind == "date" or kind == "datetime" then
    local y, m, d = 2015 + rand(10), rand(12), rand(28)
    local iso = format("%04d-%02d-%02d", y, m, d)
    if kind == "datetime" then iso = iso .. format("T%02d:%02d:00Z", rand(24) - 1, rand(60) - 1) end
    return { value = iso, label = format("%d/%d/%d", m, d, y) }
  elseif kind == "email" then
    local s = "user" .. rand(99999) .. "@example.com"
    return { value = s, label = s }
  elseif kind == "phone" then
    local s = format("(%03d) %03d-%04d", rand(999), rand(999), rand(9999))
    return { value = s, label = s }
  elseif kind == "boolean" then
    local b = rand(2) == 1
    return { value = b, label = b and "true" or "false" }
  else -- textarea: commas, quotes, newlines now and then
    local s = WORDS[rand(#WORDS)] .. ", suite " .. rand(500)
    if rand(5) == 1 then s = s .. '\nsays "hello"' end
    return { value = s, label = s }
  end
end

local function columns_meta(ncols)
  local names, info = {}, {}
  for i = 1, ncols do
    local kind = KINDS[(i - 1) % #KINDS + 1]
    names[i] = "COL_" .. i
    info[names[i]] = { label = "Column " .. i .. " (" .. kind .. ")", dataType = DATA_TYPE[kind] or kind }
  end
  return names, info
end

local function data_row(ncols)
  local cells = {}
  for i = 1, ncols do cells[i] = cell(KINDS[(i - 1) % #KINDS + 1]) end
  return { dataCells = cells }
end

local function tabular_body(nrows, ncols)
  local names, info = columns_meta(ncols)
  local rows = {}
  for r = 1, nrows do rows[r] = data_row(ncols) end
  return cjson.encode({
    attributes = { type = "Report", reportId = "00O000000000001AAA", reportName = "Bench tabular" },
    allData = true, hasDetailRows = true,
    groupingsDown = { groupings = {} }, groupingsAcross = { groupings = {} },
    factMap = { ["T!T"] = { aggregates = { { value = nrows, label = tostring(nrows) } }, rows = rows } },
    reportMetadata = { id = "00O000000000001AAA", name = "Bench tabular", reportFormat = "TABULAR",
      detailColumns = names, aggregates = { "RowCount" }, groupingsDown = {}, groupingsAcross = {} },
    reportExtendedMetadata = { detailColumnInfo = info,
      aggregateColumnInfo = { RowCount = { label = "Record Count", dataType = "int" } },
      groupingColumnInfo = {} },
  }), nrows
end

local function summary3_body(a, b, c, ncols)
  local names, info = columns_meta(ncols)
  local fm, top, nrows = {}, {}, 0
  local function aggs(count, amount)
    return { { value = amount, label = money_label(amount) }, { value = count, label = tostring(count) } }
  end
  local gt_count, gt_amount = 0, 0
  for i = 1, a do
    local n1 = { key = tostring(i - 1), value = "Region " .. i, label = "Region " .. i, groupings = {} }
    local c1, m1 = 0, 0
    for j = 1, b do
      local k2 = n1.key .. "_" .. (j - 1)
      local id = fake_id("005")
      local n2 = { key = k2, value = id, label = "Owner " .. i .. "." .. j, groupings = {} }
      local c2, m2 = 0, 0
      for k = 1, c do
        local k3 = k2 .. "_" .. (k - 1)
        local n3 = { key = k3, value = PICK[(k - 1) % #PICK + 1], label = PICK[(k - 1) % #PICK + 1], groupings = {} }
        n2.groupings[k] = n3
        local rows = {}
        for r = 1, rand(9) do rows[r] = data_row(ncols) end
        local amount = rand(100000)
        fm[k3 .. "!T"] = { aggregates = aggs(#rows, amount), rows = rows }
        c2, m2, nrows = c2 + #rows, m2 + amount, nrows + #rows
      end
      fm[k2 .. "!T"] = { aggregates = aggs(c2, m2), rows = {} }
      n1.groupings[j] = n2
      c1, m1 = c1 + c2, m1 + m2
    end
    fm[n1.key .. "!T"] = { aggregates = aggs(c1, m1), rows = {} }
    top[i] = n1
    gt_count, gt_amount = gt_count + c1, gt_amount + m1
  end
  fm["T!T"] = { aggregates = aggs(gt_count, gt_amount), rows = {} }
  local function gcol(name, label, dt) return name, { label = label, dataType = dt } end
  local ginfo = {}
  local n, i2 = gcol("REGION", "Region", "picklist"); ginfo[n] = i2
  n, i2 = gcol("OWNER", "Owner", "reference"); ginfo[n] = i2
  n, i2 = gcol("STAGE", "Stage", "picklist"); ginfo[n] = i2
  return cjson.encode({
    attributes = { type = "Report", reportId = "00O000000000002AAA", reportName = "Bench summary" },
    allData = true, hasDetailRows = true,
    groupingsDown = { groupings = top }, groupingsAcross = { groupings = {} },
    factMap = fm,
    reportMetadata = { id = "00O000000000002AAA", name = "Bench summary", reportFormat = "SUMMARY",
      detailColumns = names, aggregates = { "s!AMOUNT", "RowCount" },
      groupingsDown = { { name = "REGION" }, { name = "OWNER" }, { name = "STAGE" } }, groupingsAcross = {} },
    reportExtendedMetadata = { detailColumnInfo = info, groupingColumnInfo = ginfo,
      aggregateColumnInfo = { ["s!AMOUNT"] = { label = "Sum of Amount", dataType = "currency" },
                              RowCount = { label = "Record Count", dataType = "int" } } },
  }), nrows
end

---------------------------------------------------------------------------------------
-- measuring

local function median(t)
  local s = {}
  for i = 1, #t do s[i] = t[i] end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local bytes_out = 0
local peak = 0
local live_every, calls = nil, 0
local function discard(chunk)
  bytes_out = bytes_out + #chunk
  if live_every then
    calls = calls + 1
    if calls % live_every == 0 then collectgarbage("collect") end
  end
  local kb = collectgarbage("count")
  if kb > peak then peak = kb end
end

local function write_once(decoded, fmt, raw)
  local r = report.new(decoded)
  return assert(writers.write(fmt, r, discard, { raw = raw }))
end

local function run_case(name, body, nrows)
  local t_dec, t_csv, t_raw, t_jsonl = {}, {}, {}, {}
  local written
  for rep = 1, REPS do
    collectgarbage("collect")
    local t0 = clock()
    local decoded = cjson.decode(body)
    local t1 = clock()
    written = write_once(decoded, "csv", false)
    local t2 = clock()
    write_once(decoded, "csv", true)
    local t3 = clock()
    write_once(decoded, "jsonl", false)
    local t4 = clock()
    t_dec[rep], t_csv[rep], t_raw[rep], t_jsonl[rep] = t1 - t0, t2 - t1, t3 - t2, t4 - t3
  end
  assert(written == nrows, "row count mismatch")

  -- memory
  collectgarbage("collect")
  local before = collectgarbage("count")
  local decoded = cjson.decode(body)
  collectgarbage("collect")
  local decoded_kb = collectgarbage("count") - before
  local base = collectgarbage("count")
  peak = base
  bytes_out = 0
  write_once(decoded, "csv", false)
  local csv_bytes = bytes_out
  local peak_kb = peak - base
  collectgarbage("collect")
  collectgarbage("stop")
  local a0 = collectgarbage("count")
  write_once(decoded, "csv", false)
  local alloc_kb = collectgarbage("count") - a0
  collectgarbage("restart")
  collectgarbage("collect")
  base = collectgarbage("count")
  peak, live_every, calls = base, 100, 0
  write_once(decoded, "csv", false)
  live_every = nil
  local live_kb = peak - base
  collectgarbage("collect")

  local d, c, r, j = median(t_dec), median(t_csv), median(t_raw), median(t_jsonl)
  return {
    name = name, rows = nrows, body_kb = #body / 1024, csv_kb = csv_bytes / 1024,
    dec = d, csv = c, raw = r, jsonl = j,
    decoded_kb = decoded_kb, peak_kb = peak_kb, alloc_kb = alloc_kb, live_kb = live_kb,
  }
end

local jit_name = rawget(_G, "jit") and _G.jit.version or _VERSION
print(format("sfreports report bench  (%s, lua-cjson %s, %d interleaved repetitions, medians)",
  jit_name, cjson._VERSION or "?", REPS))

local cases = {}
do
  local body, n = tabular_body(2000, 25)
  cases[#cases + 1] = run_case("tabular 2000x25", body, n)
end
do
  local body, n = summary3_body(12, 6, 5, 15)
  cases[#cases + 1] = run_case("summary3 12x6x5", body, n)
end

print()
print(format("%-16s %6s %8s %9s %9s %9s %9s %8s %9s %10s",
  "case", "rows", "body KB", "decode ms", "csv ms", "raw ms", "jsonl ms", "csv/dec", "rows/s", "csv KB"))
for _, c in ipairs(cases) do
  print(format("%-16s %6d %8.0f %9.2f %9.2f %9.2f %9.2f %8.2f %9.0f %10.0f",
    c.name, c.rows, c.body_kb, c.dec * 1e3, c.csv * 1e3, c.raw * 1e3, c.jsonl * 1e3,
    c.csv / c.dec, c.rows / c.csv, c.csv_kb))
end
print()
print(format("%-16s %12s %14s %14s %14s", "case", "decoded KB", "csv peak KB", "csv alloc KB", "csv live KB"))
for _, c in ipairs(cases) do
  print(format("%-16s %12.0f %14.0f %14.0f %14.0f", c.name, c.decoded_kb, c.peak_kb, c.alloc_kb, c.live_kb))
end
print()
print("csv/dec < 1 means writing every row as CSV (label mode, report.new included) cost less")
print("than cjson.decode of the body did. live = most memory the write held (sampled after")
print("a full collection every 100 rows): bounded by one row plus the report index, not the output.")
