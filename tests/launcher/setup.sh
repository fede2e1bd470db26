#!/usr/bin/env bash
# Prepares what tests/api_launcher.rs needs to drive the launcher page in a real browser: Debian's
# chromium at /usr/bin/chromium, and playwright-core (no browser download of its own) installed from
# package-lock.json. What cannot be had here is said, and the test then reports SKIPPED with the reason;
# this script exits 0 either way.
set -uo pipefail
cd "$(dirname "$0")"

if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
elif [ "$(id -u)" != 0 ]; then
  echo "chromium: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium); the launcher test will be skipped"
elif ! command -v apt-get >/dev/null; then
  echo "chromium: /usr/bin/chromium is missing and there is no apt-get to install it with; the launcher test will be skipped"
else
  echo "chromium: installing Debian's package"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
    echo "chromium: apt-get could not install it (above); the launcher test will be skipped"
  fi
fi

if ! command -v npm >/dev/null; then
  echo "npm is missing: cannot install playwright-core; the launcher test will be skipped"
  exit 0
fi
if ! npm ci --no-audit --no-fund; then
  echo "npm ci failed (above): the launcher test will be skipped"
  rm -rf node_modules
fi
exit 0
