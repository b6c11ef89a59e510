#!/usr/bin/env bash
# Run the test suite on the CPU: bash scripts/test.sh [quick] [pytest arguments]
# With no arguments, every tier (what CI runs). `quick` first runs the quick tier only, the one to run after each
# change: -m "not slow and not integration" (tests/README.md). The tests run in one pytest-xdist worker per core
# (most tests keep one core busy); `-n 0` runs them in this process, for a debugger or a single test.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
if [ "${1:-}" = "quick" ]; then
  shift
  set -- -m "not slow and not integration" "$@"
fi
python -m pytest -n auto --dist worksteal "$@"
