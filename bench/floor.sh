#!/usr/bin/env bash
# bench/floor.sh: the physical floor of the Sync scenario: curl fetches the report (gzip)
# and pipes it into a bare cjson.decode in lua5.4, nothing else (no CSV is written).
# Each side of the pipe runs under its own GNU time so that the driver can add up the
# peak RSS of both processes (GNU time or getrusage on the whole pipeline give the largest
# single process as "max RSS", not the sum). Wall and CPU time come from the driver's
# measurement of this whole script (CPU summed over every process of the pipeline).
#
#   bench/floor.sh URL CURL_CONFIG OUT_DIR   (writes the peak RSS in KB of each side to
#                                             OUT_DIR/floor.curl and OUT_DIR/floor.lua)
# CURL_CONFIG holds the Authorization header, so the token is not on a command line.
set -eo pipefail
url=$1 cfg=$2 dir=$3
/usr/bin/time -f '%M' -o "$dir/floor.curl" curl --compressed -sS -K "$cfg" "$url" \
  | /usr/bin/time -f '%M' -o "$dir/floor.lua" lua5.4 -e 'require("cjson").decode(io.read("a"))'
