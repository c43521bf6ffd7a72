-- spec/support/timing.lua: how much slower than normal the suite runs (valgrind about
-- sixfold, the sanitizer build about threefold). Specs assert no upper time bound (they
-- break under load): they prove overlap and promptness by what the fake org saw
-- (max_concurrent, max_running_instances, requests, polls). SLOW only stretches the
-- server-side delays that must outlast the client's own work, e.g. an async_delay within
-- which a slowed-down client must have started every instance for them to overlap.
-- Timings themselves are measured by `make bench`.
local timing = {}

timing.SLOW = (os.getenv("SFREPORTS_UNDER_VALGRIND") and 6)
  or (os.getenv("SFREPORTS_UNDER_SANITIZER") and 3) or 1

return timing
