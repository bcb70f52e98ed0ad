#!/bin/sh
# Installs the Debian packages that the test suite drives for real, only those missing.
# Each entry is COMMAND:PACKAGE.
set -eu
NEEDED="ncat:ncat tmux:tmux socat:socat openssl:openssl redis-server:redis-server chromium:chromium sqlite3:sqlite3 ip:iproute2 nginx:nginx haproxy:haproxy promtool:prometheus systemd-analyze:systemd irssi:irssi weechat-headless:weechat-headless faketime:faketime"
missing=""
for entry in $NEEDED; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing="$missing ${entry#*:}"
done
[ -z "$missing" ] && exit 0
echo "installing Debian packages for the tests:$missing" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # word splitting of the package list is intended
$sudo apt-get install -y -qq --no-install-recommends $missing >&2 ||
  { $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq --no-install-recommends $missing >&2; }
