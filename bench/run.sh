#!/usr/bin/env bash
# bench/run.sh: what `make bench` runs. Builds the C core for lua5.4 and LuaJIT, installs
# jsforce (the comparison contender, never a dependency of sfreports) from the npm registry
# into .cache/bench/node_modules, checks the tools, then runs bench/suite.lua, which
# prints the tables and writes them to .cache/bench/results.md.
#   bench/run.sh [suite options: --quick, --only sync,many,keepalive,paging,xlsx, --reps N ...]
set -euo pipefail
cd "$(dirname "$0")/.."

JSFORCE_VERSION=${JSFORCE_VERSION:-3}   # pinned major
for tool in /usr/bin/time curl node npm lua5.4 luajit bash; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is required" >&2; exit 1; }
done

make --no-print-directory LUA=lua5.4 all >/dev/null
make --no-print-directory LUA=luajit all >/dev/null

if [ ! -f .cache/bench/node_modules/jsforce/package.json ] \
   || ! grep -q "\"version\": \"$JSFORCE_VERSION\." .cache/bench/node_modules/jsforce/package.json; then
  echo "bench: installing jsforce@$JSFORCE_VERSION into .cache/bench (npm registry)" >&2
  mkdir -p .cache/bench
  npm install --prefix .cache/bench --no-audit --no-fund --no-save --loglevel=error "jsforce@$JSFORCE_VERSION" >&2
fi

# Everything from here on talks only to the fake org on 127.0.0.1: no proxy.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1,localhost
# A whole `make bench` stays well under 10 minutes; this is the hard stop.
exec timeout 900 lua5.4 bench/suite.lua --markdown .cache/bench/results.md "$@"
