-- sfreports.serve_entry: the cache entries of sfreports.serve in a lua_shared_dict.
--   "e:<key>"  the meta line: ETag TAB content type TAB all_data (1|0) TAB stored (epoch s)
--   "v:<key>"  the meta line, LF, the encoded body (one value: a body never pairs with
--              another run's meta)
-- Each worker keeps the bodies it has read (at most LOCAL_ENTRIES): a hit reads only the
-- small meta line from the dict and, when it is the one the worker holds, answers with the
-- worker's copy of the body (no copy of a large string per request).
local type, tonumber = type, tonumber
local format, find, sub, match, concat = string.format, string.find, string.sub, string.match, table.concat

local M = {}

M.LOCAL_ENTRIES = 64

local cache, count = {}, 0

local function remember(key, e)
  if cache[key] == nil then
    count = count + 1
    if count > M.LOCAL_ENTRIES then cache, count = {}, 1 end
  end
  cache[key] = e
end

local function meta_of(e)
  return concat({ e.etag, e.ctype, e.all_data and "1" or "0", format("%.3f", e.stored) }, "\t")
end

-- A new entry for a body just encoded.
function M.new(ngx, body, ctype, all_data)
  local e = { body = body, etag = '"' .. ngx.md5(body) .. '"', ctype = ctype, all_data = all_data ~= false,
    stored = ngx.now() }
  e.meta = meta_of(e)
  return e
end

-- Stores e under key for ttl seconds: true, or nil and the dict's reason ("no memory"
-- when the value is larger than the dict can hold). A full dict evicts its least recently
-- used entries to make room (shared dict `set`).
function M.store(shm, key, e, ttl)
  local ok, err = shm:set("v:" .. key, e.meta .. "\n" .. e.body, ttl)
  if not ok then return nil, err end
  ok, err = shm:set("e:" .. key, e.meta, ttl)
  if not ok then
    shm:delete("v:" .. key)
    return nil, err
  end
  remember(key, e)
  return true
end

-- The entry under key, or nil.
function M.get(shm, key)
  local m = shm:get("e:" .. key)
  if m == nil then return nil end
  local e = cache[key]
  if e and e.meta == m then return e end
  local v = shm:get("v:" .. key)
  if type(v) ~= "string" then return nil end
  local nl = find(v, "\n", 1, true)
  if not nl then return nil end
  local vm = sub(v, 1, nl - 1)
  local etag, ctype, all, stored = match(vm, "^([^\t]*)\t([^\t]*)\t([01])\t([%d.]+)$")
  if not etag then return nil end
  e = { etag = etag, ctype = ctype, all_data = all == "1", stored = tonumber(stored), meta = vm,
    body = sub(v, nl + 1) }
  remember(key, e)
  return e
end

-- Drops the entry (every worker: their copies no longer match any meta).
function M.drop(shm, key)
  shm:delete("e:" .. key)
  shm:delete("v:" .. key)
  cache[key] = nil
  return true
end

return M
