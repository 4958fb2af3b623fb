#!/usr/bin/env bash
# Browser tests drive Debian's chromium; install it when missing and we are allowed to (root).
# Without it the browser tests skip with a reason.
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium for the browser tests..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "Could not install chromium: browser tests will be skipped."
else
  echo "chromium is not installed (apt-get install -y chromium): browser tests will be skipped."
fi
exit 0
