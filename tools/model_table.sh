#!/usr/bin/env bash
# Print the model zoo (computed parameters and multiply-adds, reported accuracies):
#   bash tools/model_table.sh [--models PATTERN] [--image-size N]
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
python -m mindcv_shufflenet.summary "$@"
