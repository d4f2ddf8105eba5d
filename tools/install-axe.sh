#!/usr/bin/env bash
# axe-core (the accessibility rules engine) for the web app's browser tests, from npm at a pinned version, into
# .venv/axe/ beside the Python packages; the tests inject its axe.min.js into the page (nothing is fetched at test
# time). Without npm it says so and the browser tests skip their accessibility checks (CI installs npm and fails).
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_VERSION=4.10.3
if ! command -v npm >/dev/null; then
  echo "npm not found: the browser tests will skip their axe-core accessibility checks" >&2
  exit 0
fi
npm install --silent --no-audit --no-fund --no-save --prefix .venv/axe "axe-core@$AXE_VERSION"
