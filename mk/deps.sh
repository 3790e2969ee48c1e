#!/bin/sh
# deps.sh -- check for, and install, the Debian packages in
# mk/debian-packages.txt.
#   deps.sh check    exit 1 and list what is missing
#   deps.sh install  apt-get install what is missing (root), or print the
#                    exact command to run and exit 1 (not root)
#   deps.sh ensure   install only if something is missing (what make runs)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pkgs=$(grep -v '^[[:space:]]*#' "$here/debian-packages.txt" | tr -s ' \n' ' ')

missing() {
    for p in $pkgs; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
    done
}

install() {
    m=$(missing)
    [ -z "$m" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "weft needs these Debian packages: $m" >&2
        echo "run:  sudo apt-get update && sudo apt-get install -y $m" >&2
        exit 1
    fi
    echo "weft: installing Debian packages: $m" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $m >&2
}

case "${1:-ensure}" in
check)
    m=$(missing)
    [ -z "$m" ] || { echo "missing Debian packages: $m" >&2; exit 1; }
    ;;
install|ensure) install ;;
*) echo "usage: deps.sh check|install|ensure" >&2; exit 64 ;;
esac
