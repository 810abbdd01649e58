#!/usr/bin/env bash
# Install the Prism mock server (npm @stoplight/prism-cli) into .prism/ for the contract
# test (tests/test_contract.py). Does nothing when the pinned version is already there.
# Without npm, or when the install fails, it says so and exits 0: the contract test then
# skips, with the reason in pytest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

# 5.14.2 is the newest release that runs on Node 18-22; 5.15 and later need Node >= 24.
PRISM_VERSION=5.14.2
PRISM_BIN=.prism/node_modules/.bin/prism
PRISM_PKG=.prism/node_modules/@stoplight/prism-cli/package.json

# The installed version is read from its package.json: asking node for it takes ~1 s.
if [ -x "$PRISM_BIN" ] && grep -q "\"version\": \"$PRISM_VERSION\"" "$PRISM_PKG" 2>/dev/null; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "prism.sh: npm not found; the Prism contract test will be skipped" >&2
    exit 0
fi

echo "prism.sh: installing @stoplight/prism-cli@$PRISM_VERSION into .prism/" >&2
rm -rf .prism
mkdir -p .prism
limit=()
if command -v timeout >/dev/null 2>&1; then
    limit=(timeout 600)  # a registry that stops answering must not hold up the tests
fi
if ! ${limit[@]+"${limit[@]}"} npm install --no-save --no-audit --no-fund --loglevel=error \
    --prefix .prism "@stoplight/prism-cli@$PRISM_VERSION"; then
    echo "prism.sh: npm install failed; the Prism contract test will be skipped" >&2
    rm -rf .prism
    exit 0
fi
