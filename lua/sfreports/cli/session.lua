-- sfreports.cli.session: the state of one `sfreports` invocation: its streams, options,
-- messages (every one scrubbed of secrets and control characters), credentials (the
-- client, from the SF_* variables or --org) and its output file, which is replaced
-- atomically: rows go to a temporary file next to it, renamed over it only on success.
local type, tostring, tonumber, pcall, setmetatable, ipairs, rawget =
  type, tostring, tonumber, pcall, setmetatable, ipairs, rawget
local format, find, match, sub, gsub, byte =
  string.format, string.find, string.match, string.sub, string.gsub, string.byte
local concat = table.concat

local Session = {}
Session.__index = Session

Session.EXIT = { OK = 0, FAILURE = 1, USAGE = 2, TRUNCATED = 3, INTERRUPTED = 130 }
local EXIT = Session.EXIT

-- The longest message printed on standard error; a server's text beyond it is cut.
local MAX_MESSAGE = 2000

local function getenv_of(env)
  if env == nil then return os.getenv end
  if type(env) == "function" then return env end
  return function(k) return env[k] end
end

-- io_streams as for cli.main.
function Session.new(env, io_streams)
  return setmetatable({
    stdout = io_streams.stdout or io.stdout,
    stderr = io_streams.stderr or io.stderr,
    stdin = io_streams.stdin or io.stdin,
    stderr_tty = io_streams.stderr_tty, stdin_tty = io_streams.stdin_tty, stdout_tty = io_streams.stdout_tty,
    sleep = io_streams.sleep, clock = io_streams.clock,
    getenv = getenv_of(env),
    o = {}, secrets = {},
  }, Session)
end

-- True when standard output is a terminal (io_streams.stdout_tty, or asks the shell).
function Session:stdout_is_tty()
  if self.stdout_tty == nil then
    local tty = false
    if self.stdout == io.stdout then
      local a, _, c = os.execute("test -t 1")
      if type(a) == "number" then tty = a == 0
      else tty = a == true and (c == nil or c == 0) end
    end
    self.stdout_tty = tty
  end
  return self.stdout_tty
end

-- A binary output (xlsx) needs -o FILE, or -o - onto something that is not a terminal.
-- Raises a usage error otherwise (before any request).
function Session:check_binary_output()
  local out = self.o.output
  if out == nil then
    require("sfreports.cli.argv").usage_error(
      "an .xlsx workbook is binary: give -o FILE (or -o - to write it to a pipe)")
  end
  if out == "-" and self:stdout_is_tty() then
    require("sfreports.cli.argv").usage_error("refusing to write an .xlsx workbook to a terminal: redirect"
      .. " standard output to a file or a pipe, or give -o FILE")
  end
end

-- True when file descriptor 2 is a terminal (asks the shell: Lua has no isatty).
function Session:is_tty()
  if self.stderr_tty == nil then
    local tty = false
    if self.stderr == io.stderr then
      local a, _, c = os.execute("test -t 2")
      if type(a) == "number" then tty = a == 0 -- Lua 5.1: the status
      else tty = a == true and (c == nil or c == 0) end
    end
    self.stderr_tty = tty
  end
  return self.stderr_tty
end

---------------------------------------------------------------------------------------
-- interruption (Ctrl-C)

-- The standalone interpreters turn SIGINT into the error "interrupted!", raised in
-- whatever Lua code runs next (a library may wrap it into an error value's message).
function Session.is_interrupt(e)
  if type(e) == "table" then e = e.message end
  return type(e) == "string" and find(e, "interrupted!", 1, true) ~= nil
end

---------------------------------------------------------------------------------------
-- messages

-- Remembers a secret (a token) that no message may show.
function Session:add_secret(secret)
  if type(secret) == "string" and #secret >= 4 then self.secrets[#self.secrets + 1] = secret end
end

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

-- The secrets of this run: SF_ACCESS_TOKEN and every token the library handed over.
function Session:all_secrets()
  local list = { self.getenv("SF_ACCESS_TOKEN") }
  for _, s in ipairs(self.secrets) do list[#list + 1] = s end
  return list
end

-- The message as one printable line: no secret (raw, URL-encoded or after "Bearer"),
-- no control character (a server's text could otherwise drive the terminal), bounded.
function Session:scrub(msg)
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

function Session:note(msg)
  if not self.o.quiet then self.stderr:write("sfreports: ", self:scrub(msg), "\n") end
end

-- Prints a failure; exit status 1. A failure caused by Ctrl-C is left to cli.main.
function Session:fail(msg)
  if Session.is_interrupt(msg) then
    self.interrupted = true
    return EXIT.INTERRUPTED
  end
  self.stderr:write("sfreports: ", self:scrub(msg), "\n")
  return EXIT.FAILURE
end

-- The command-line options behind the library's run options (named by errors' `option`).
local OPTION_FLAGS = {
  filters = "--filter", logic = "--logic", replace_filters = "--replace-filters",
  date_filter = "--date/--from/--to", sort = "--sort", top = "--top", columns = "--columns",
}

-- First line of a raised error, without the "file.lua:12: " position.
local function raised_message(e)
  local msg = match(tostring(e), "^[^\n]*")
  return (gsub(msg, "^[^%s:]+%.lua:%d+: ", ""))
end
Session.raised_message = raised_message

-- The library's words for its options, in the command line's (the CLI speaks CLI):
-- run_all's opts.key is --key COLUMN, its page filters read as --filter would.
local OPERATOR_WORDS = { equals = "=", notEqual = "!=", lessThan = "<", greaterThan = ">",
  lessOrEqual = "<=", greaterOrEqual = ">=" }
function Session.cli_words(msg)
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
local function describe_error(err)
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
  return Session.cli_words(msg)
end
Session.describe_error = describe_error

-- Whether libcurl would use a proxy for url, as it decides from the environment
-- (https_proxy/HTTPS_PROXY or http_proxy, then all_proxy/ALL_PROXY; no_proxy/NO_PROXY):
-- "through the proxy HOST:PORT (from VAR)" or "no proxy". Credentials in it are not shown.
function Session:proxy_note(url)
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

function Session:fail_err(err, what)
  local msg = describe_error(err)
  if type(err) == "table" and err.kind == "network" and self._client then
    local note = self:proxy_note(self.getenv("SF_INSTANCE_URL") or self._client.instance_url)
    if note then msg = msg .. "; " .. note end
  end
  if what then msg = what .. ": " .. msg end
  return self:fail(msg)
end

---------------------------------------------------------------------------------------
-- credentials

-- A token pasted with its surroundings: blanks and line ends around it, or the
-- "Bearer " of an Authorization header.
local function clean_token(t)
  if type(t) ~= "string" then return t end
  t = match(t, "^%s*(.-)%s*$")
  local rest = match(t, "^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)$")
  return rest or t
end

-- The options of sfreports.new that come from the command line: --timeout is the budget
-- of the whole command (every request, retry, wait and page), from the client's making.
-- Returns the options, or nil and a message (a --trace-json file that cannot be written).
function Session:client_options(sfreports)
  local c = self.checked or {}
  local budget = c.timeout and math.min(c.timeout, 2147483) or nil
  local opts = { timeout = budget, budget = budget, retries = c.retries, stall_timeout = c.stall_timeout,
    user_agent = "sfreports-cli/" .. tostring(sfreports.VERSION),
    -- tokens issued by an auth flow (--org) are scrubbed from every message like SF_ACCESS_TOKEN
    on_token = function(token) self:add_secret(token) end }
  if self.o.api_version then opts.api_version = self.o.api_version end
  -- -v, --trace-json, retries on a terminal (sfreports.cli.trace; not loaded when none
  -- of them can apply)
  if self.o.verbose or self.o.trace_json or self:is_tty() then
    local hook, herr = require("sfreports.cli.trace").hook(self)
    if herr then return nil, herr end
    opts.on_request = hook
  end
  return opts
end

-- Seconds left of the command's --timeout (nil without one).
function Session:time_left()
  if not self.timeout then return nil end
  local now = require("sfreports.core").monotime()
  return math.max(self.timeout - (now - (self.started or now)), 0.001)
end

local function org_client(self, sfreports, opts)
  local alias = self.o.org
  opts.api_version = opts.api_version or self.getenv("SF_API_VERSION")
  opts.auth = { flow = "sf_cli", alias = alias }
  local pok, c, e = pcall(sfreports.new, opts)
  if not pok then
    local why = raised_message(c)
    if find(why, "module 'sfreports.auth' not found", 1, true) then
      why = "this installation of sfreports has no sfreports.auth module (Salesforce CLI logins)"
    end
    return nil, format("cannot use the Salesforce CLI login %q: %s", alias, why)
  end
  if not c then return nil, format("cannot use the Salesforce CLI login %q: %s", alias, describe_error(e)) end
  return c
end

local function env_client(self, sfreports, opts)
  local token = self.getenv("SF_ACCESS_TOKEN")
  if type(token) == "string" and token ~= "" then
    opts.access_token = clean_token(token)
    self:add_secret(opts.access_token)
  end
  local client, err = sfreports.from_env(opts, self.getenv)
  if client then return client end
  local msg = describe_error(err)
  if err and err.kind == "invalid" and find(msg, "not set", 1, true) then
    msg = msg .. ": set SF_INSTANCE_URL and SF_ACCESS_TOKEN, or use --org ALIAS"
  end
  return nil, msg
end

-- The message when the library (its C core) cannot be loaded: the exact command that
-- builds it for the interpreter in use (the Makefile's LUA= names it).
function Session.build_hint(why)
  local jit = rawget(_G, "jit")
  local runtime = jit and "luajit" or ("lua" .. (match(_VERSION, "(%d+%.%d+)") or ""))
  local cmd = "make LUA=" .. runtime
  return format("cannot load the sfreports library for %s (is it built for %s? run `%s` in the checkout,"
    .. " or install it for %s): %s", runtime, runtime, cmd, runtime, match(tostring(why), "^[^\n]*"))
end

-- Builds the client from --org or the SF_* variables. Returns it, or nil and a message.
function Session:client()
  if self._client then return self._client end
  local ok, sfreports = pcall(require, "sfreports")
  if not ok then
    return nil, Session.build_hint(sfreports)
  end
  self.started = require("sfreports.core").monotime()
  local opts, oerr = self:client_options(sfreports)
  if not opts then return nil, oerr end
  local client, err
  local prof = self.o.profile or self.getenv("SFREPORTS_PROFILE")
  if prof == "" then prof = nil end
  if self.o.profile and self.o.org then
    require("sfreports.cli.argv").usage_error("--org and --profile both name the org: give one")
  end
  if prof and not self.o.org then
    -- a named org of the config file (sfreports.cli.profile)
    local popts, perr = require("sfreports.cli.profile").client_options(self, prof, opts)
    if not popts then return nil, perr end
    local pok, c, e = pcall(sfreports.new, popts)
    if not pok then return nil, format("profile %q: %s", prof, raised_message(c)) end
    if not c then return nil, format("profile %q: %s", prof, describe_error(e)) end
    client = c
  elseif self.o.org then
    client, err = org_client(self, sfreports, opts)
  else
    client, err = env_client(self, sfreports, opts)
  end
  if not client then return nil, err end
  self._client = client
  return client
end

-- The output is checked (and its temporary file made) before the client sends anything:
-- an unwritable -o costs no API call and no wait. Returns the client, or nil and a message.
function Session:ready()
  local ok, err = self:reserve_output()
  if not ok then return nil, err end
  return self:client()
end

---------------------------------------------------------------------------------------
-- the output file

local function file_error(path, err)
  -- io.open's message starts with the name it was given (the temporary file's)
  local why = match(tostring(err), ": ([^:]+)$") or tostring(err)
  return "cannot write " .. path .. ": " .. why
end

local tmpname = require "sfreports.tmpname"

-- Makes the temporary file for -o FILE (nothing for standard output). Returns true, or
-- nil and a message: FILE is a directory, a file that cannot be written, or in a
-- folder where no file can be made. FILE that is a device or a FIFO (-o /dev/null) is
-- opened and written in place: renaming a file over it would replace the device.
function Session:reserve_output()
  local path = self.o.output
  if path == nil or path == "-" or self._tmp then return true end
  if sub(path, -1) == "/" then return nil, "cannot write " .. path .. ": not a file name" end
  local mode, final = tmpname.plan(path)
  if mode == "direct" then
    local f, err = io.open(path, "wb")
    if not f then return nil, file_error(path, err) end
    self._tmp, self._final, self._direct, self._file = path, path, true, f
    return true
  end
  local existing = io.open(final, "rb")
  if existing then
    existing:close()
    -- opened for appending (nothing written): fails for a directory or a read-only file
    local f, err = io.open(final, "ab")
    if not f then return nil, file_error(path, err) end
    f:close()
  end
  local tmp = tmpname.next_to(final)
  if not tmp then return nil, "cannot write " .. path .. ": no temporary file name is free next to it" end
  local f, err = io.open(tmp, "wb")
  if not f then return nil, file_error(path, err) end
  self._tmp, self._final, self._file = tmp, final, f
  return true
end

-- The stream the rows go to.
function Session:open_output()
  if self.o.output == nil or self.o.output == "-" then return self.stdout end
  local ok, err = self:reserve_output()
  if not ok then return nil, err end
  return self._file
end

-- Finishes the output: the temporary file is closed and renamed over FILE (standard
-- output is flushed). Returns true, or nil and a message.
function Session:close_output()
  if not self._tmp then
    local ok, err = self.stdout:flush()
    if ok == nil and err then return nil, err end
    return true
  end
  local f, tmp, direct = self._file, self._tmp, self._direct
  self._file, self._tmp = nil, nil
  local ok, err = true, nil
  if f then ok, err = f:close() end -- (a writer that wrote the file by name closed it)
  if ok and self.interrupted then ok, err = nil, "interrupted" end
  if ok and not direct then ok, err = os.rename(tmp, self._final) end
  if not ok then
    if not direct then os.remove(tmp) end
    return nil, err
  end
  return true
end

-- Drops the temporary file of a run that did not succeed: FILE stays as it was (a device
-- written in place is never removed).
function Session:discard_output()
  if self._file then pcall(self._file.close, self._file) end
  self._file = nil
  if self._tmp and not self._direct then os.remove(self._tmp) end
  self._tmp = nil
end

return Session
