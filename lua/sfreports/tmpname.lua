-- sfreports.tmpname: the name of the temporary file that a whole file is written to before
-- it is renamed onto its final name (CLI -o, export, the xlsx writer): in the same folder
-- (a rename never crosses file systems), hidden, and unused at the time of asking.
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

return M
