-- sfreports.sleep: how a wait sleeps. Waiting never busy-waits. In this order:
--   1. inside OpenResty, in a phase that may yield (content, access, timer...): ngx.sleep;
--   2. a `sleep` function from the call options, else from the client options
--      (e.g. copas.sleep, cqueues.sleep, or your own scheduler's);
--   3. `yield = true` (call option) inside a coroutine: the yield protocol
--      (coroutine.yield({ sfreports = "sleep", seconds = s }); see sfreports.async);
--   4. otherwise a blocking sleep from the C core (core.sleep).
local core = require "sfreports.core"
local phase = require "sfreports.phase"

local type, error = type, error

local M = {}

-- Timers have millisecond resolution (nginx warns about ngx.sleep(0)): never ask for less.
M.MIN_SLEEP = 0.001

local function yield_sleep(s)
  coroutine.yield({ sfreports = "sleep", seconds = s })
end

local function in_coroutine()
  local co, is_main = coroutine.running()
  return co ~= nil and not is_main
end

-- Returns sleep(seconds) for call options `opts` (sleep, yield) and the client's own
-- `sleep` option, and true when that sleep blocks the whole thread (run_many then lets
-- the engine do the waiting instead). Raises on misuse.
function M.choose(opts, client_sleep)
  if phase.can_yield() then
    return phase.ngx().sleep, false
  end
  local user = opts and opts.sleep or client_sleep
  if user ~= nil then
    if type(user) ~= "function" then
      error("sfreports: option 'sleep' must be a function(seconds), got " .. type(user), 3)
    end
    return user, false
  end
  if opts and opts.yield then
    if not in_coroutine() then
      error("sfreports: yield = true needs to run inside a coroutine (see the yield protocol in sfreports.async)", 3)
    end
    return yield_sleep, false
  end
  return core.sleep, true
end

return M
