-- sfreports.dashboards.filters: a dashboard's filters (dashboardMetadata.filters, at most
-- three) read from its metadata, and the filters a caller names resolved to the
-- `filter1`..`filter3` query parameters Salesforce takes (option ids).
--
--   filters.list(metadata) -> { { index, key = "filter1", name, label, options = {
--       { id, alias, label, value, operation, start_value, end_value, raw } }, raw } }
--   filters.resolve(metadata, wanted, dashboard_id) -> { filter1 = option id, ... }
--       | nil, `invalid` error naming the filters or options that exist
--
-- `wanted` maps a filter to an option: { ["Region"] = "EMEA", ["Deal Size"] = "Large" }.
-- A filter is named by its label or name (case and surrounding blanks ignored) or by its
-- position ("filter1".."filter3"); an option by its id, alias, label or value (the same
-- way; an id as sent or by its first 15 characters). A name that matches two options is an
-- error listing both. Pure Lua apart from errors (no request: the caller fetches the
-- metadata).
local errors = require "sfreports.errors"
local ids = require "sfreports.ids"
local json = require "sfreports.json"

local type, ipairs, pairs, tostring, tonumber, error = type, ipairs, pairs, tostring, tonumber, error
local format, lower, match, sub, concat = string.format, string.lower, string.match, string.sub, table.concat

local null = json.null
local M = {}

M.MAX = 3 -- Salesforce: at most three filters per dashboard

local function str(v)
  if type(v) == "string" and v ~= "" then return v end
  return nil
end

local function norm(s)
  return lower(match(s, "^%s*(.-)%s*$"))
end

-- The text an option shows: its alias, else its label, else its value (a range:
-- "start to end").
local function option_label(o)
  local range
  if str(o.startValue) or str(o.endValue) then
    range = tostring(str(o.startValue) or "") .. " to " .. tostring(str(o.endValue) or "")
  end
  return str(o.alias) or str(o.label) or str(o.value) or range
end

local function read_option(o)
  return { id = str(o.id), alias = str(o.alias), label = option_label(o), value = o.value ~= null and o.value or nil,
    operation = str(o.operation), start_value = str(o.startValue), end_value = str(o.endValue), raw = o }
end

-- The filters of a dashboard's metadata (dashboardMetadata or a describe body). Entries
-- that are not objects, and options that are not, are left out (they cannot be chosen).
function M.list(metadata)
  local out = {}
  local list = type(metadata) == "table" and metadata.filters
  if type(list) ~= "table" then return out end
  for _, f in ipairs(list) do
    if type(f) == "table" then
      local n = #out + 1
      local entry = { index = n, key = "filter" .. n, name = str(f.name), label = str(f.label) or str(f.name),
        options = {}, raw = f }
      if type(f.options) == "table" then
        for _, o in ipairs(f.options) do
          if type(o) == "table" then entry.options[#entry.options + 1] = read_option(o) end
        end
      end
      out[n] = entry
    end
  end
  return out
end

local function names_of(list, what)
  local names = {}
  for i, e in ipairs(list) do names[i] = format("%q", tostring(e[what] or e.id or e.key)) end
  return #names > 0 and concat(names, ", ") or "none"
end

local function find_filter(list, key)
  local n = match(key, "^%s*[Ff][Ii][Ll][Tt][Ee][Rr](%d)%s*$")
  if n then return list[tonumber(n)] end
  local k = norm(key)
  for _, f in ipairs(list) do
    if (f.label and norm(f.label) == k) or (f.name and norm(f.name) == k) then return f end
  end
  return nil
end

-- The options of filter f that `value` names: by id first, then by alias, label or value.
local function find_options(f, value)
  for _, o in ipairs(f.options) do
    if o.id and (o.id == value or (#value == 15 and sub(o.id, 1, 15) == value)) then return { o } end
  end
  local v, found = norm(value), {}
  for _, o in ipairs(f.options) do
    local text = type(o.value) == "string" and o.value or nil
    if (o.alias and norm(o.alias) == v) or (o.label and norm(o.label) == v) or (text and norm(text) == v) then
      found[#found + 1] = o
    end
  end
  return found
end

local function invalid(message, dashboard_id)
  return nil, errors.invalid(message, { option = "filters", dashboard_id = dashboard_id })
end

-- Resolves `wanted` (see the header) against the metadata. Returns the query parameters
-- { filter1 = id, ... }, or nil and an `invalid` error. Raises on misuse (a key or value
-- that is not a string).
function M.resolve(metadata, wanted, dashboard_id)
  local list = M.list(metadata)
  local out, taken = {}, {}
  for key, value in pairs(wanted) do
    if type(key) ~= "string" or type(value) ~= "string" then
      error(format("sfreports: option 'filters' maps filter names to option names (strings), got %s = %s",
        type(key), type(value)), 3)
    end
    local f = find_filter(list, key)
    if not f then
      return invalid(format("dashboard %s has no filter %q; its filters: %s", tostring(dashboard_id), key,
        names_of(list, "label")), dashboard_id)
    end
    if taken[f.key] then
      return invalid(format("dashboard filter %q is given twice (as %q and %q)", tostring(f.label),
        taken[f.key], key), dashboard_id)
    end
    local found = find_options(f, value)
    if #found == 0 then
      return invalid(format("dashboard filter %q has no option %q; its options: %s", tostring(f.label), value,
        names_of(f.options, "label")), dashboard_id)
    end
    if #found > 1 then
      return invalid(format("dashboard filter %q: %q names %d options (%s); give the option id", tostring(f.label),
        value, #found, names_of(found, "id")), dashboard_id)
    end
    local id = found[1].id
    if not ids.check(id) then
      return nil, errors.new("decode", format("dashboard filter %q: option %q has no valid id in the metadata",
        tostring(f.label), value), { dashboard_id = dashboard_id, retryable = false })
    end
    taken[f.key] = key
    out[f.key] = id
  end
  return out
end

return M
