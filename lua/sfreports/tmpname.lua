-- sfreports.tmpname: the name of the temporary file that a whole file is written to before
-- it is renamed onto its final name (CLI -o, export, the xlsx writer): in the same folder
-- (a rename never crosses file systems), hidden, and unused at the time of asking; and
-- whether a name may be written that way at all (M.plan).
local core = require "sfreports.core"

local format, match, tostring, open, time = string.format, string.match, tostring, io.open, os.time

local M = {}

local counter = 0

-- A name next to path that no file has yet, or nil after 100 tries.
function M.next_to(path)
  local dir, base = match(path, "^(.*/)([^/]*)$")
  if not dir then dir, base = "", path end
  for _ = 1, 100 do
    counter = counter + 1
    -- a fresh table's address differs between processes (ASLR): two runs never collide
    local name = format("%s.%s.sfreports-%s-%d-%d.tmp", dir, base, match(tostring({}), "(%x+)$") or "0",
      time(), counter)
    local f = open(name, "rb")
    if not f then return name end
    f:close()
  end
  return nil
end

-- How a whole file is written to path. Returns "rename", final: write a temporary file
-- next to `final` and rename it onto `final` on success (path is missing or a regular
-- file; final is path, or the real path of the file a symbolic link names, so that the
-- link stays). Or "direct", path: write path itself, in place (a device such as
-- /dev/null, a FIFO, a socket: a rename would replace the device, and as root it can).
-- A directory is "rename" too: opening it fails with the system's message.
function M.plan(path)
  local kind, real = core.file_kind(path)
  if kind == "other" then return "direct", path end
  return "rename", real or path
end

return M
