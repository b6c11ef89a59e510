#!/usr/bin/env bash
# One process: a CPU, or one Ascend card.
#   bash scripts/train_standalone.sh configs/shufflenetv2/shufflenet_v2_x0_5_cpu.yaml --data_dir /data/imagenet
# Extra arguments override the YAML (--key value). Resume a killed run with --resume auto.
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 CONFIG.yaml [--key value ...]" >&2; exit 2; fi
CONFIG="$1"; shift
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python train.py --config "$CONFIG" "$@"
