#!/usr/bin/env bash
# Data parallel on one machine: one process per device, started by msrun.
#   bash scripts/train_msrun.sh 8 configs/shufflenetv2/shufflenet_v2_x1_0_ascend.yaml --data_dir /data/imagenet
#   bash scripts/train_msrun.sh 2 configs/shufflenetv2/shufflenet_v2_x0_5_cpu.yaml --data_dir ...   # on a CPU
# Worker logs go to $LOG_DIR (default ./msrun_logs/worker_<rank>.log); rank 0 also prints to this terminal.
# MASTER_PORT (default 8118) must be free. A failing rank ends the whole job with a non-zero status.
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 NUM_DEVICES CONFIG.yaml [--key value ...]" >&2; exit 2; fi
WORKERS="$1"; CONFIG="$2"; shift 2
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec msrun --bind_core=True --worker_num "$WORKERS" --local_worker_num "$WORKERS" \
  --master_addr 127.0.0.1 --master_port "${MASTER_PORT:-8118}" --log_dir "${LOG_DIR:-msrun_logs}" --join True \
  python train.py --config "$CONFIG" --distribute True "$@"
