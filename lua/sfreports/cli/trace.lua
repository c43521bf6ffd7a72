-- sfreports.cli.trace: what `sfreports` shows of its HTTP exchanges, through the
-- library's on_request hook (sfreports.observe): with -v/--verbose one line per exchange
-- on standard error, with --trace-json FILE one JSON object per line, and on a terminal
-- a line when a request is retried ("retrying after 502, attempt 2/4"). After `run
-- --all` on a terminal, a one-line summary (rows, runs, time, API usage). Every line goes
-- through the session's scrubber (no token, no control character), on top of the
-- library's own masking of the path. Requires nothing of the CLI: it gets the session.
local type, tostring, pcall, ipairs, pairs, floor = type, tostring, pcall, ipairs, pairs, math.floor
local format, gsub = string.format, string.gsub

local M = {}

-- "1,234,567"
local function thousands(n)
  local s = format("%d", floor(n))
  local out
  repeat
    s, out = gsub(s, "^(-?%d+)(%d%d%d)", "%1,%2")
  until out == 0
  return s
end
M.thousands = thousands

local function bytes(n)
  if n >= 10 * 1024 * 1024 then return format("%.0f MB", n / 1048576) end
  if n >= 10 * 1024 then return format("%.0f KB", n / 1024) end
  return format("%d B", n)
end

-- What ended the exchange, in a few words: "200", "502", "network error".
local function outcome(info)
  if info.status then return tostring(info.status) end
  local err = info.error
  if type(err) == "table" and err.kind then return tostring(err.kind) .. " error" end
  return "no answer"
end

-- The -v line of an exchange (without the "sfreports: " prefix).
function M.line(info)
  local parts = {
    format("%s %s -> %s, %d ms, %s in, %s out, attempt %d/%d", tostring(info.method), tostring(info.path),
      outcome(info), floor((info.elapsed or 0) * 1000 + 0.5), bytes(info.bytes_in or 0),
      bytes(info.bytes_out or 0), info.attempt or 1, info.max_attempts or 1),
  }
  if info.connection_reused then parts[#parts + 1] = ", reused connection" end
  if info.retry_in then parts[#parts + 1] = format(", retry in %.1f s", info.retry_in) end
  if info.renewing then parts[#parts + 1] = ", renewing the token" end
  return table.concat(parts)
end

local ERROR_FIELDS = { "kind", "message", "code", "status" }

-- The --trace-json object of an exchange: the hook's fields, the error as its plain
-- fields, the limits as Salesforce sent them; strings scrubbed by the session.
function M.record(s, info)
  local rec = {
    time = os.time(), method = info.method, path = info.path, status = info.status,
    attempt = info.attempt, max_attempts = info.max_attempts, elapsed = info.elapsed,
    bytes_in = info.bytes_in, bytes_out = info.bytes_out, connection_reused = info.connection_reused,
    op = info.op, report_id = info.report_id, instance_id = info.instance_id,
    dashboard_id = info.dashboard_id, retry_in = info.retry_in, renewing = info.renewing,
    hook_error = info.hook_error,
  }
  local limits = info.limits
  if type(limits) == "table" and type(limits.raw) == "string" then rec.limits = limits.raw end
  local err = info.error
  if type(err) == "table" then
    local e = {}
    for _, k in ipairs(ERROR_FIELDS) do e[k] = err[k] end
    rec.error = e
  end
  for k, v in pairs(rec) do
    if type(v) == "string" then rec[k] = s:scrub(v) end
  end
  if rec.error then
    for k, v in pairs(rec.error) do
      if type(v) == "string" then rec.error[k] = s:scrub(v) end
    end
  end
  return rec
end

-- Opens the --trace-json file ("-": standard error). Returns the stream, or nil and a
-- message.
function M.open(s, path)
  if path == "-" then return s.stderr end
  local f, err = io.open(path, "ab")
  if not f then return nil, "cannot write the trace file " .. path .. ": " .. tostring(err) end
  s._trace_file = f
  return f
end

-- The on_request hook for the session's options, or nil when nothing is shown.
-- Returns hook | nil, or nil and a message when the trace file cannot be opened.
function M.hook(s)
  local o = s.o
  local verbose = o.verbose and true or false
  local trace
  if o.trace_json then
    local err
    trace, err = M.open(s, o.trace_json)
    if not trace then return nil, err end
  end
  local tty_retries = not o.quiet and not verbose and s:is_tty()
  if not (verbose or trace or tty_retries) then return nil end
  local json = require "sfreports.json"
  local stderr = s.stderr
  return function(info)
    if verbose then stderr:write("sfreports: ", s:scrub(M.line(info)), "\n") end
    if tty_retries and info.retry_in then
      -- the progress line of a wait may be on screen: clear it first
      stderr:write("\r\027[K", s:scrub(format("sfreports: retrying after %s, attempt %d/%d",
        outcome(info), (info.attempt or 1) + 1, info.max_attempts or 1)), "\n")
    end
    if trace then
      trace:write(json.encode(M.record(s, info)), "\n")
      trace:flush()
    end
  end
end

-- Closes the trace file (when it is one).
function M.close(s)
  local f = s._trace_file
  s._trace_file = nil
  if f then pcall(f.close, f) end
end

-- The summary line after a long command: "5,000 rows, 3 report runs, 4.2 s, API usage
-- 1,012/15,000 (Salesforce)". usage: client:usage().
function M.summary(rows, usage)
  local runs = usage.runs.sync + usage.runs.async
  local parts = {
    format("%s row%s", thousands(rows), rows == 1 and "" or "s"),
    format("%d report run%s", runs, runs == 1 and "" or "s"),
    format("%d request%s", usage.requests, usage.requests == 1 and "" or "s"),
    format("%.1f s", usage.seconds),
  }
  if usage.retries > 0 then
    parts[#parts + 1] = format("%d retr%s", usage.retries, usage.retries == 1 and "y" or "ies")
  end
  local api = usage.api_usage
  if api then parts[#parts + 1] = format("API usage %s/%s", thousands(api.used), thousands(api.max)) end
  return table.concat(parts, ", ")
end

return M
