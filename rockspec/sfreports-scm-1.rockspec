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
    format into rows, writes CSV/TSV/JSON, pages past the 2,000-row cap, and works inside
    OpenResty without blocking the worker. A C core does HTTP with libcurl.
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
    -- LUA MODULES (kept in sync with lua/sfreports by `make rockspec-check`)
  },
  install = {
    bin = { sfreports = "bin/sfreports" },
  },
}
test_dependencies = { "busted" }
test = { type = "busted" }
