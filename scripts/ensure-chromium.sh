#!/usr/bin/env bash
# Makes sure the Debian Chromium that the Playwright tests drive is installed.
# Playwright's own browser download is never used (no internet beyond package
# mirrors), so this installs the distribution package when it can.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing: installing the Debian package with apt-get (this takes a minute)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
  if [ -x "$CHROMIUM" ]; then
    echo "Chromium installed at $CHROMIUM."
    exit 0
  fi
  echo "apt-get finished but $CHROMIUM is still missing." >&2
  exit 1
fi

cat >&2 <<MSG
The browser tests need Chromium at $CHROMIUM, and it is not installed.
Install it as root, for example on Debian or Ubuntu:
  sudo apt-get update && sudo apt-get install -y chromium
(or run the quick checks without the browser: npm test -- --no-e2e)
MSG
exit 1
