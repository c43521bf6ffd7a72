-- sfreports.paging.paged: the paged report run_all returns: the first run's columns,
-- then its rows page by page (fetched lazily by the pager behind it), as an iterator,
-- page by page, or streamed into a writer. A failed page stops the rows and sets `error`.
local ipairs, type = ipairs, type
local collectgarbage = collectgarbage

local Paged = {}
Paged.__index = Paged

function Paged:columns() return self.report:columns() end
function Paged:grouping_columns() return self.report:grouping_columns() end

-- The next page { rows = {Row...}, report, conds, level }, or nil at the end / on error
-- (then self.error is set and returned second).
function Paged:next_page()
  if self.error then return nil, self.error end
  local pager = self._pager
  if pager.done then return nil end
  local page, err = pager:next_page()
  if not page then
    if err then
      self.error = err
      return nil, err
    end
    self.all_data = true
    if self.on_progress then self.on_progress(self.stats, self, true) end
    return nil
  end
  self.stats.pages = self.stats.pages + 1
  for _, row in ipairs(page.rows) do
    self.stats.rows = self.stats.rows + 1
    row.index = self.stats.rows
  end
  -- opts.on_progress(stats, paged, final): after each page, and once at the end
  if self.on_progress then self.on_progress(self.stats, self, false) end
  return page
end

-- Iterator over every row; pages are fetched as the loop reaches them. On a failure the
-- loop ends early and self.error holds the error (check it after the loop).
function Paged:rows()
  local page, i = nil, 0
  return function()
    while true do
      if page then
        i = i + 1
        local row = page.rows[i]
        if row then return row end
      end
      -- drop the finished page before fetching the next one, and collect it, so that
      -- peak memory is one page (plus the first run), not one page plus the garbage of
      -- the previous ones waiting for the incremental collector
      if page then
        page = nil
        collectgarbage("collect")
      end
      page, i = self:next_page(), 0
      if not page then return nil end
    end
  end
end

-- Calls fn(rows, info) per page; true, or nil and the error.
function Paged:each_page(fn)
  while true do
    local page, err = self:next_page()
    if not page then
      if err then return nil, err end
      return true
    end
    fn(page.rows, { report = page.report, index = self.stats.pages, conds = page.conds })
  end
end

-- Streams every row into a writer (sfreports.writers): fmt is a format name (a new
-- writer on sink with wopts) or a writer made by writers.new (header not yet written).
-- Returns what w:finish() returns (rows written), or nil and the error.
function Paged:write(fmt, sink, wopts)
  local w = fmt
  if type(fmt) == "string" then w = require("sfreports.writers").new(fmt, sink, wopts) end
  local ok, err = w:header(self)
  if not ok then return nil, err end
  for row in self:rows() do
    ok, err = w:row(row)
    if not ok then return nil, err end
  end
  if self.error then return nil, self.error end
  return w:finish()
end

return Paged
