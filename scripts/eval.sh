#!/usr/bin/env bash
# Evaluate a checkpoint: top-1 / top-5 / loss (any validate.py option may follow).
#   bash scripts/eval.sh configs/shufflenetv2/shufflenet_v2_x1_0_ascend.yaml ckpt/shufflenet_v2_x1_0-best.ckpt --data_dir /data/imagenet
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG.yaml CHECKPOINT [--key value ...]" >&2; exit 2; fi
CONFIG="$1"; CKPT="$2"; shift 2
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python validate.py --config "$CONFIG" --ckpt_path "$CKPT" "$@"
