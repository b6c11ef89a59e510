#!/usr/bin/env bash
# Run the test suite on the CPU: bash scripts/test.sh [pytest arguments]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m pytest "$@"
