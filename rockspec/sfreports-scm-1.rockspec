-- LuaRocks package for sfreports (C core over libcurl + Lua layer).
rockspec_format = "3.0"
package = "sfreports"
version = "scm-1"
source = {
  url = "git+https://github.com/sfreports/sfreports.git",
}
description = {
  summary = "Run Salesforce reports (Reports and Dashboards REST API) from Lua and OpenResty",
  detailed = [[
    sfreports runs Salesforce reports synchronously or asynchronously, turns every report
    format into rows, writes CSV/TSV/JSON and .xlsx (libxlsxwriter), streams Salesforce's
    formatted Excel export, pages past the 2,000-row cap, and works inside OpenResty
    without blocking the worker. A C core does HTTP with libcurl.
  ]],
  license = "MIT",
  homepage = "https://github.com/sfreports/sfreports",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1.0",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  CRYPTO = { header = "openssl/evp.h", library = "crypto" },
  ZLIB = { header = "zlib.h", library = "z" },
  -- the native .xlsx writer (sfreports.xlsx); Debian: libxlsxwriter-dev
  XLSXWRITER = { header = "xlsxwriter.h", library = "xlsxwriter" },
}
build = {
  type = "builtin",
  modules = {
    ["sfreports.core"] = {
      sources = { "src/core.c" },
      libraries = { "curl", "crypto", "z" },
      incdirs = { "$(CURL_INCDIR)", "$(CRYPTO_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(CRYPTO_LIBDIR)", "$(ZLIB_LIBDIR)" },
    },
    ["sfreports.xlsx"] = {
      sources = { "src/xlsx.c" },
      libraries = { "xlsxwriter", "z" },
      incdirs = { "$(XLSXWRITER_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(XLSXWRITER_LIBDIR)", "$(ZLIB_LIBDIR)" },
    },
    ["sfreports.async"] = "lua/sfreports/async.lua",
    ["sfreports.auth"] = "lua/sfreports/auth.lua",
    ["sfreports.cli"] = "lua/sfreports/cli.lua",
    ["sfreports.cli.argv"] = "lua/sfreports/cli/argv.lua",
    ["sfreports.cli.commands"] = "lua/sfreports/cli/commands.lua",
    ["sfreports.cli.dashboard"] = "lua/sfreports/cli/dashboard.lua",
    ["sfreports.cli.help"] = "lua/sfreports/cli/help.lua",
    ["sfreports.cli.lifecycle"] = "lua/sfreports/cli/lifecycle.lua",
    ["sfreports.cli.output"] = "lua/sfreports/cli/output.lua",
    ["sfreports.cli.profile"] = "lua/sfreports/cli/profile.lua",
    ["sfreports.cli.progress"] = "lua/sfreports/cli/progress.lua",
    ["sfreports.cli.inspect"] = "lua/sfreports/cli/inspect.lua",
    ["sfreports.cli.words"] = "lua/sfreports/cli/words.lua",
    ["sfreports.cli.session"] = "lua/sfreports/cli/session.lua",
    ["sfreports.cli.shape"] = "lua/sfreports/cli/shape.lua",
    ["sfreports.cli.syntax"] = "lua/sfreports/cli/syntax.lua",
    ["sfreports.cli.trace"] = "lua/sfreports/cli/trace.lua",
    ["sfreports.client"] = "lua/sfreports/client.lua",
    ["sfreports.dashboards"] = "lua/sfreports/dashboards.lua",
    ["sfreports.dashboards.filters"] = "lua/sfreports/dashboards/filters.lua",
    ["sfreports.dashboards.model"] = "lua/sfreports/dashboards/model.lua",
    ["sfreports.dashboards.refresh"] = "lua/sfreports/dashboards/refresh.lua",
    ["sfreports.errors"] = "lua/sfreports/errors.lua",
    ["sfreports.export"] = "lua/sfreports/export.lua",
    ["sfreports.describe"] = "lua/sfreports/describe.lua",
    ["sfreports.filters"] = "lua/sfreports/filters.lua",
    ["sfreports.filters.args"] = "lua/sfreports/filters/args.lua",
    ["sfreports.filters.expr"] = "lua/sfreports/filters/expr.lua",
    ["sfreports.filters.values"] = "lua/sfreports/filters/values.lua",
    ["sfreports.ids"] = "lua/sfreports/ids.lua",
    ["sfreports"] = "lua/sfreports/init.lua",
    ["sfreports.json"] = "lua/sfreports/json.lua",
    ["sfreports.logic"] = "lua/sfreports/logic.lua",
    ["sfreports.paging"] = "lua/sfreports/paging.lua",
    ["sfreports.lifecycle"] = "lua/sfreports/lifecycle.lua",
    ["sfreports.paging.keys"] = "lua/sfreports/paging/keys.lua",
    ["sfreports.paging.paged"] = "lua/sfreports/paging/paged.lua",
    ["sfreports.paging.plan"] = "lua/sfreports/paging/plan.lua",
    ["sfreports.paging.rowset"] = "lua/sfreports/paging/rowset.lua",
    ["sfreports.report"] = "lua/sfreports/report.lua",
    ["sfreports.report.base"] = "lua/sfreports/report/base.lua",
    ["sfreports.report.blocks"] = "lua/sfreports/report/blocks.lua",
    ["sfreports.report.cells"] = "lua/sfreports/report/cells.lua",
    ["sfreports.report.columns"] = "lua/sfreports/report/columns.lua",
    ["sfreports.report.groups"] = "lua/sfreports/report/groups.lua",
    ["sfreports.report.keys"] = "lua/sfreports/report/keys.lua",
    ["sfreports.report.rows"] = "lua/sfreports/report/rows.lua",
    ["sfreports.report.shape"] = "lua/sfreports/report/shape.lua",
    ["sfreports.report.careful"] = "lua/sfreports/report/careful.lua",
    ["sfreports.retry"] = "lua/sfreports/retry.lua",
    ["sfreports.run_options"] = "lua/sfreports/run_options.lua",
    ["sfreports.run_options.dates"] = "lua/sfreports/run_options/dates.lua",
    ["sfreports.run_options.layout"] = "lua/sfreports/run_options/layout.lua",
    ["sfreports.run_options.aggregates"] = "lua/sfreports/run_options/aggregates.lua",
    ["sfreports.observe"] = "lua/sfreports/observe.lua",
    ["sfreports.options"] = "lua/sfreports/options.lua",
    ["sfreports.phase"] = "lua/sfreports/phase.lua",
    ["sfreports.secrets"] = "lua/sfreports/secrets.lua",
    ["sfreports.summary"] = "lua/sfreports/summary.lua",
    ["sfreports.send"] = "lua/sfreports/send.lua",
    ["sfreports.sleep"] = "lua/sfreports/sleep.lua",
    ["sfreports.tmpname"] = "lua/sfreports/tmpname.lua",
    ["sfreports.serve"] = "lua/sfreports/serve.lua",
    ["sfreports.serve_entry"] = "lua/sfreports/serve_entry.lua",
    ["sfreports.reuse"] = "lua/sfreports/reuse.lua",
    ["sfreports.days"] = "lua/sfreports/days.lua",
    ["sfreports.transport"] = "lua/sfreports/transport.lua",
    ["sfreports.transport_ngx"] = "lua/sfreports/transport_ngx.lua",
    ["sfreports.many"] = "lua/sfreports/many.lua",
    ["sfreports.ngx_http"] = "lua/sfreports/ngx_http.lua",
    ["sfreports.writers"] = "lua/sfreports/writers.lua",
    ["sfreports.writers.aligned"] = "lua/sfreports/writers/aligned.lua",
    ["sfreports.writers.delimited"] = "lua/sfreports/writers/delimited.lua",
    ["sfreports.writers.json_rows"] = "lua/sfreports/writers/json_rows.lua",
    ["sfreports.writers.text"] = "lua/sfreports/writers/text.lua",
    ["sfreports.writers.xlsx"] = "lua/sfreports/writers/xlsx.lua",
  },
  install = {
    bin = { sfreports = "bin/sfreports" },
  },
}
test_dependencies = { "busted" }
test = { type = "busted" }
