-- sfreports.cli.session: the state of one `sfreports` invocation: its streams, options,
-- messages (every one scrubbed of secrets and control characters), credentials (the
-- client, from the SF_* variables or --org) and its output file, which is replaced
-- atomically: rows go to a temporary file next to it, renamed over it only on success.
local type, tostring, pcall, setmetatable, ipairs = type, tostring, pcall, setmetatable, ipairs
local format, find, match, sub = string.format, string.find, string.match, string.sub

local Session = {}
Session.__index = Session

Session.EXIT = { OK = 0, FAILURE = 1, USAGE = 2, TRUNCATED = 3, INTERRUPTED = 130 }
local EXIT = Session.EXIT

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

-- The secrets of this run: SF_ACCESS_TOKEN and every token the library handed over.
function Session:all_secrets()
  local list = { self.getenv("SF_ACCESS_TOKEN") }
  for _, s in ipairs(self.secrets) do list[#list + 1] = s end
  return list
end

-- The message as one printable line: no secret, no control character, bounded
-- (sfreports.cli.words, loaded when there is something to say).
function Session:scrub(msg)
  return require("sfreports.cli.words").scrub(self, msg)
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

-- How failures are worded (sfreports.cli.words): the library's error as one line in the
-- command line's terms, with the proxy in use for a network error.
function Session.raised_message(e) return require("sfreports.cli.words").raised_message(e) end
function Session.cli_words(msg) return require("sfreports.cli.words").cli_words(msg) end
function Session.describe_error(err) return require("sfreports.cli.words").describe_error(err) end
function Session:proxy_note(url) return require("sfreports.cli.words").proxy_note(self, url) end
function Session:fail_err(err, what) return require("sfreports.cli.words").fail_err(self, err, what) end
function Session.build_hint(why) return require("sfreports.cli.words").build_hint(why) end

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
    local why = Session.raised_message(c)
    if find(why, "module 'sfreports.auth' not found", 1, true) then
      why = "this installation of sfreports has no sfreports.auth module (Salesforce CLI logins)"
    end
    return nil, format("cannot use the Salesforce CLI login %q: %s", alias, why)
  end
  if not c then return nil, format("cannot use the Salesforce CLI login %q: %s", alias, Session.describe_error(e)) end
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
  local msg = Session.describe_error(err)
  if err and err.kind == "invalid" and find(msg, "not set", 1, true) then
    msg = msg .. ": set SF_INSTANCE_URL and SF_ACCESS_TOKEN, or use --org ALIAS"
  end
  return nil, msg
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
    if not pok then return nil, format("profile %q: %s", prof, Session.raised_message(c)) end
    if not c then return nil, format("profile %q: %s", prof, Session.describe_error(e)) end
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

-- The whole text of an input file named on the command line (- is standard input): the
-- text, or nil and a message when standard input cannot be read. A file that cannot be
-- opened is a usage error.
function Session:read_input(path)
  if path == "-" then
    local text = self.stdin:read("*a")
    if not text then return nil, "cannot read standard input" end
    return text
  end
  local f, ferr = io.open(path, "rb")
  if not f then require("sfreports.cli.argv").usage_error("cannot read " .. path .. ": " .. tostring(ferr)) end
  local text = f:read("*a")
  f:close()
  return text
end

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
