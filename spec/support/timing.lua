-- spec/support/timing.lua: how much slower than normal the suite runs, for the upper
-- bounds of timing assertions (lower bounds never stretch). Valgrind slows the Lua process
-- about sixfold, the sanitizer build about threefold. Those runs check memory safety; the
-- timing claims themselves (overlap, waves, deadlines) are proven by the normal run, SLOW = 1.
local timing = {}

timing.SLOW = (os.getenv("SFREPORTS_UNDER_VALGRIND") and 6)
  or (os.getenv("SFREPORTS_UNDER_SANITIZER") and 3) or 1

return timing
