#!/usr/bin/env bash
# Run the test suite on the CPU: bash scripts/test.sh [pytest arguments]
# The tests run in one pytest-xdist worker per core (most tests keep one core busy); `-n 0` runs them in
# this process, for a debugger or a single test.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m pytest -n auto --dist worksteal "$@"
