#!/usr/bin/env bash
# bench/compare.sh: what `make bench-compare OLD=dir` runs. Builds the C core of this
# checkout and of OLD_DIR (into OLD_DIR/build) for lua5.4 and LuaJIT, then runs
# bench/compare.lua: the sfreports scenarios of `make bench` for both checkouts against one
# fake org, interleaved, with new/old ratios (table also in .cache/bench/compare.md).
#   bench/compare.sh OLD_DIR [compare options: --quick, --only sync,many,keepalive,paging,async,
#                             --reps N, --no-callgrind, --new DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/compare.sh OLD_DIR [options]}
shift
for tool in /usr/bin/time curl lua5.4 luajit bash valgrind; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is required" >&2; exit 1; }
done
for dir in . "$old"; do
  make --no-print-directory -C "$dir" LUA=lua5.4 all >/dev/null
  make --no-print-directory -C "$dir" LUA=luajit all >/dev/null
done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1,localhost
mkdir -p .cache/bench
# The whole comparison stays under 10 minutes on 2 busy cores; this is the hard stop.
exec timeout 900 lua5.4 bench/compare.lua "$old" --markdown .cache/bench/compare.md "$@"
