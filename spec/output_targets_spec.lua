-- output_targets_spec: where a whole file is written (sfreports.tmpname.plan). A regular
-- file is replaced by a rename of a temporary file; a device or a FIFO is written in
-- place (as root, a rename over /dev/null replaced the device with a regular file); a
-- symbolic link stays a link and the file it names is replaced. The CLI's -o, export
-- and the xlsx writer, against the fake org.
local fakeorg = require "fakeorg"
local cli_run = require "cli_run"
local core = require "sfreports.core"
local sfreports = require "sfreports"
local writers = require "sfreports.writers"

local q, read_file = fakeorg.shell_quote, fakeorg.read_file
local R = fakeorg.reports

-- "char", "fifo", "link", "file" or "missing" as the shell's test sees path.
local function kind_of(path)
  local p = io.popen("if [ -h " .. q(path) .. " ]; then echo link; elif [ -c " .. q(path)
    .. " ]; then echo char; elif [ -p " .. q(path) .. " ]; then echo fifo; elif [ -f " .. q(path)
    .. " ]; then echo file; else echo missing; fi")
  local k = p:read("*l")
  p:close()
  return k
end

describe("output targets", function()
  local org, sfr, dir, client

  local expected -- the CSV of tabular_small as written to a regular file

  setup(function()
    org = fakeorg.start{ tls = false }
    sfr = cli_run.new()
    dir = sfr:use_org(org, "targets")
    client = assert(sfreports.new{ instance_url = org.url, access_token = org.token })
    local res = sfr:run({ "run", R.tabular_small.id, "--format", "csv", "-o", "expected.csv" })
    assert(res.code == 0, res.err)
    expected = assert(read_file(dir .. "/expected.csv"))
    assert(#expected > 1000)
  end)

  teardown(function()
    if client then client:close() end
    if org then org:stop() end
  end)

  it("core.file_kind tells files, directories, devices and links apart", function()
    assert.are.equal("other", (core.file_kind("/dev/null")))
    assert.are.equal("directory", (core.file_kind(dir)))
    assert.are.equal("missing", (core.file_kind(dir .. "/nothing-here")))
    cli_run.write_file(dir .. "/plain.txt", "x")
    assert.are.same({ "file" }, { core.file_kind(dir .. "/plain.txt") })
    os.execute("ln -sf plain.txt " .. q(dir .. "/link.txt"))
    local kind, real = core.file_kind(dir .. "/link.txt")
    assert.are.equal("file", kind)
    assert.are.equal("/plain.txt", real:sub(-10))
  end)

  it("-o /dev/null writes into the device and leaves it a device", function()
    local res = sfr:run({ "run", R.tabular_small.id, "--format", "csv", "-o", "/dev/null" })
    assert.are.equal(0, res.code, res.err)
    assert.are.equal("char", kind_of("/dev/null"))
    assert.are.same({}, cli_run.leftovers("/dev"))
  end)

  it("-o FIFO writes through the FIFO (a reader gets every row) and leaves it a FIFO", function()
    local fifo, got = dir .. "/pipe", dir .. "/from-pipe.csv"
    os.remove(fifo)
    os.execute("mkfifo " .. q(fifo))
    assert.are.equal("fifo", kind_of(fifo))
    os.execute("(cat " .. q(fifo) .. " > " .. q(got) .. ") &")
    local res = sfr:run({ "run", R.tabular_small.id, "--format", "csv", "-o", fifo })
    assert.are.equal(0, res.code, res.err)
    assert.are.equal("fifo", kind_of(fifo))
    -- the reader ends when the writer closes; its copy is what a regular file gets
    local text
    for _ = 1, 200 do
      text = read_file(got)
      if text and #text >= #expected then break end
      os.execute("sleep 0.05")
    end
    assert.are.equal(expected, text)
    assert.are.same({}, cli_run.leftovers(dir))
  end)

  it("-o LINK keeps the link and replaces the file it names; a failed run leaves both alone", function()
    cli_run.write_file(dir .. "/target.csv", "old\n")
    os.remove(dir .. "/out-link.csv")
    os.execute("ln -s target.csv " .. q(dir .. "/out-link.csv"))
    local res = sfr:run({ "run", R.tabular_small.id, "--format", "csv", "-o", "out-link.csv" })
    assert.are.equal(0, res.code, res.err)
    assert.are.equal("link", kind_of(dir .. "/out-link.csv"))
    assert.are.equal(expected, read_file(dir .. "/target.csv"))
    cli_run.write_file(dir .. "/target.csv", "old\n")
    res = sfr:run({ "run", "00OFk00000NoSuchAAA", "--format", "csv", "-o", "out-link.csv" })
    assert.are_not.equal(0, res.code)
    assert.are.equal("link", kind_of(dir .. "/out-link.csv"))
    assert.are.equal("old\n", read_file(dir .. "/target.csv"))
    assert.are.same({}, cli_run.leftovers(dir))
  end)

  it("the xlsx writer and export write a device in place", function()
    local report = assert(client:run_sync(R.tabular_small.id))
    assert.are.equal(40, assert(writers.xlsx(report, "/dev/null")))
    assert.are.equal("char", kind_of("/dev/null"))
    assert.is_truthy(client:export(R.tabular_small.id, { to = "/dev/null" }))
    assert.are.equal("char", kind_of("/dev/null"))
    assert.are.same({}, cli_run.leftovers("/dev"))
  end)
end)
