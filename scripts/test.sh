#!/usr/bin/env bash
# Runs mcpstorm's whole test suite. Installs the third-party MCP servers the tests run
# against (npm's server-everything, PyPI's mcp) into the project, then runs cargo test.
# Integration tests drive real servers under load, so they run one at a time: figures
# measured on a 2-core machine shared with another load test would be noise.
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --prefix tests/fixtures/node --no-audit --no-fund --loglevel=error
# The official MCP conformance suite and the Node 22 it needs (npm's node@22 package, used
# only by tests/conformance.rs; the system node is left alone).
npm ci --prefix tests/fixtures/conformance --no-audit --no-fund --loglevel=error
python3 -m pip install --quiet --disable-pip-version-check 'mcp==2.3.0' 'websockets>=14'

cargo test --all-targets -- --test-threads=1
