#!/usr/bin/env bash
# Installs the Debian packages sfreports needs to build, test and demo, when missing.
# Called by `make deps` (and so by `make test` and `make demo`). Prints what to install
# where it cannot install (not root and no sudo).
set -euo pipefail

packages=(
  gcc make pkg-config curl openssl clang libclang-rt-14-dev
  lua5.1 lua5.3 lua5.4 liblua5.1-0-dev liblua5.3-dev liblua5.4-dev
  luajit2 libluajit2-5.1-dev
  libcurl4-openssl-dev libssl-dev zlib1g-dev libxlsxwriter-dev unzip
  lua-cjson lua-busted lua-check luarocks
  nginx libnginx-mod-http-lua
  ${SFREPORTS_EXTRA_PACKAGES:-}
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "sfreports needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
# One transaction first; one package at a time if the resolver refuses the whole set.
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sfreports-apt.log 2>&1; then
  for p in "${missing[@]}"; do
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$p" >>/tmp/sfreports-apt.log 2>&1 || {
      echo "could not install $p (see /tmp/sfreports-apt.log)" >&2; exit 1; }
  done
fi
# nginx's package starts a system server on port 80 when it is installed here; the project
# never uses it. Stop that one server (the pid file of the package's configuration), and
# nothing else: other nginx processes on the machine are not ours.
case " ${missing[*]} " in
  *" nginx "*|*" libnginx-mod-http-lua "*)
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
      "${sudo[@]}" systemctl stop nginx >/dev/null 2>&1 || true
    elif [ -s /run/nginx.pid ]; then
      "${sudo[@]}" kill -QUIT "$(cat /run/nginx.pid)" >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
