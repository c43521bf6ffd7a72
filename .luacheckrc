-- luacheck configuration: library code may use only what every Lua from 5.1 to 5.4 has.
std = "max"
max_line_length = 120
files["spec"] = { std = "+busted" }
files["fakeorg"] = { globals = { "ngx" } }
files["examples/nginx"] = { globals = { "ngx" } }
exclude_files = { "build", ".cache" }
