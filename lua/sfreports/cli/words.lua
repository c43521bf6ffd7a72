-- sfreports.cli.words: how the `sfreports` command words what it prints on standard
-- error, loaded when there is something to say: every message as one printable line with
-- no secret (raw, URL- or form-encoded, JSON-escaped, after "Bearer") and no control
-- character, bounded; the library's errors in the command line's terms (its options as
-- flags, operators as symbols, HTTP status and code); the proxy libcurl would use for a
-- failed connection; the build hint when the C core cannot be loaded. (self: the CLI
-- session, sfreports.cli.session.)
local type, tostring, tonumber, ipairs, rawget = type, tostring, tonumber, ipairs, rawget
local format, find, match, sub, gsub, byte =
  string.format, string.find, string.match, string.sub, string.gsub, string.byte
local concat = table.concat

local W = {}

-- The longest message printed on standard error; a server's text beyond it is cut.
local MAX_MESSAGE = 2000

-- The end of `secret` in msg starting at i, or nil. Each character of the secret may
-- come back as itself or encoded: "%XX" (either case, as URL and form encoders do,
-- whichever characters they choose to encode), "+" for a space, "\/" for "/" (JSON).
local function secret_at(msg, i, secret)
  local j = i
  for k = 1, #secret do
    local c, m = byte(secret, k), byte(msg, j)
    if m == c then
      j = j + 1
    elseif m == 37 and match(msg, "^%x%x", j + 1) and tonumber(sub(msg, j + 1, j + 2), 16) == c then
      j = j + 3
    elseif (m == 43 and c == 32) then
      j = j + 1
    elseif m == 92 and c == 47 and byte(msg, j + 1) == 47 then
      j = j + 2
    else
      return nil
    end
  end
  return j - 1
end

-- msg with every occurrence of secret (in any of the forms above) replaced.
local function redact(msg, secret)
  local out, i, n, last = {}, 1, #msg, 1
  local first = byte(secret, 1)
  while i <= n do
    local m = byte(msg, i)
    local stop = (m == first or m == 37 or m == 43 or m == 92) and secret_at(msg, i, secret)
    if stop then
      out[#out + 1] = sub(msg, last, i - 1)
      out[#out + 1] = "[redacted]"
      i, last = stop + 1, stop + 1
    else
      i = i + 1
    end
  end
  if last == 1 then return msg end
  out[#out + 1] = sub(msg, last)
  return concat(out)
end

-- The message as one printable line: no secret (raw, URL-encoded or after "Bearer"),
-- no control character (a server's text could otherwise drive the terminal), bounded.
function W.scrub(self, msg)
  msg = tostring(msg)
  for _, secret in ipairs(self:all_secrets()) do
    if type(secret) == "string" and #secret >= 4 then
      msg = redact(msg, secret)
    end
  end
  msg = gsub(msg, "([Bb][Ee][Aa][Rr][Ee][Rr]%s+)[^%s\"',;]+", "%1[redacted]")
  msg = gsub(msg, "[%c\127]", " ")
  if #msg > MAX_MESSAGE then msg = sub(msg, 1, MAX_MESSAGE) .. "..." end
  return msg
end

-- The command-line options behind the library's run options (named by errors' `option`).
local OPTION_FLAGS = {
  filters = "--filter", logic = "--logic", replace_filters = "--replace-filters",
  date_filter = "--date/--from/--to", sort = "--sort", top = "--top", columns = "--columns",
}

-- First line of a raised error, without the "file.lua:12: " position.
function W.raised_message(e)
  local msg = match(tostring(e), "^[^\n]*")
  return (gsub(msg, "^[^%s:]+%.lua:%d+: ", ""))
end

-- The library's words for its options, in the command line's (the CLI speaks CLI):
-- run_all's opts.key is --key COLUMN, its page filters read as --filter would.
local OPERATOR_WORDS = { equals = "=", notEqual = "!=", lessThan = "<", greaterThan = ">",
  lessOrEqual = "<=", greaterOrEqual = ">=" }
function W.cli_words(msg)
  msg = gsub(msg, "give more keys with opts%.key", "name more paging columns with --key COLUMN,COLUMN")
  msg = gsub(msg, "with opts%.key", "with --key COLUMN")
  msg = gsub(msg, "opts%.key", "--key COLUMN")
  msg = gsub(msg, " %(max_runs%)", "")
  -- "(STAGE_NAME equals Closed Won, AMOUNT greaterThan 5)" -> "(STAGE_NAME = Closed Won, AMOUNT > 5)"
  msg = gsub(msg, "(%u[%w_]*) (%a+) ", function(col, op)
    local sym = OPERATOR_WORDS[op]
    if sym then return col .. " " .. sym .. " " end
  end)
  return msg
end

-- A library error value as one line: message plus the fields that help (status, code).
function W.describe_error(err)
  if type(err) ~= "table" then return tostring(err) end
  local msg = tostring(err.message or err)
  if type(err.budget) == "number" then msg = format("--timeout %g s ran out", err.budget) end
  local extra = {}
  if err.code and err.code ~= "" and not find(msg, tostring(err.code), 1, true) then
    extra[#extra + 1] = tostring(err.code)
  end
  if err.status and not find(msg, tostring(err.status), 1, true) then
    extra[#extra + 1] = "HTTP " .. tostring(err.status)
  end
  if #extra > 0 then msg = msg .. " (" .. concat(extra, ", ") .. ")" end
  local flag = OPTION_FLAGS[err.option]
  if flag then msg = msg .. " [" .. flag .. "]" end
  return W.cli_words(msg)
end

-- Whether libcurl would use a proxy for url, as it decides from the environment
-- (https_proxy/HTTPS_PROXY or http_proxy, then all_proxy/ALL_PROXY; no_proxy/NO_PROXY):
-- "through the proxy HOST:PORT (from VAR)" or "no proxy". Credentials in it are not shown.
function W.proxy_note(self, url)
  local getenv = self.getenv
  local scheme, host = match(tostring(url or ""), "^(%a+)://%[?([^/:%]]+)")
  if not scheme then return nil end
  scheme = scheme:lower()
  local names = scheme == "https" and { "https_proxy", "HTTPS_PROXY" } or { "http_proxy" }
  names[#names + 1], names[#names + 2] = "all_proxy", "ALL_PROXY"
  local var, proxy
  for _, n in ipairs(names) do
    local v = getenv(n)
    if type(v) == "string" and v ~= "" then var, proxy = n, v break end
  end
  if not proxy then return "no proxy" end
  local no = getenv("no_proxy") or getenv("NO_PROXY")
  if type(no) == "string" then
    for item in no:gmatch("[^,%s]+") do
      local d = item:gsub("^%.", ""):lower()
      local h = host:lower()
      if d == "*" or h == d or sub(h, -#d - 1) == "." .. d then return "no proxy (" .. host .. " is in no_proxy)" end
    end
  end
  proxy = gsub(proxy, "//[^@/]*@", "//")
  return format("through the proxy %s (from %s)", proxy, var)
end

function W.fail_err(self, err, what)
  local msg = W.describe_error(err)
  if type(err) == "table" and err.kind == "network" and self._client then
    local note = W.proxy_note(self, self.getenv("SF_INSTANCE_URL") or self._client.instance_url)
    if note then msg = msg .. "; " .. note end
  end
  if what then msg = what .. ": " .. msg end
  return self:fail(msg)
end

-- The message when the library (its C core) cannot be loaded: the exact command that
-- builds it for the interpreter in use (the Makefile's LUA= names it).
function W.build_hint(why)
  local jit = rawget(_G, "jit")
  local runtime = jit and "luajit" or ("lua" .. (match(_VERSION, "(%d+%.%d+)") or ""))
  local cmd = "make LUA=" .. runtime
  return format("cannot load the sfreports library for %s (is it built for %s? run `%s` in the checkout,"
    .. " or install it for %s): %s", runtime, runtime, cmd, runtime, match(tostring(why), "^[^\n]*"))
end

return W
