#!/usr/bin/env bash
# Data parallel over several machines. Run the same command on every node, with its own NODE_RANK:
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 bash scripts/train_msrun_multinode.sh 8 CONFIG.yaml --data_dir ...
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=1 bash scripts/train_msrun_multinode.sh 8 CONFIG.yaml --data_dir ...
# MASTER_ADDR is node 0's address, reachable from every node on MASTER_PORT (default 8118). Every node
# needs the code, the environment and the data at the same paths; checkpoints are written by global
# rank 0 (on node 0) into ckpt_save_dir.
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 DEVICES_PER_NODE CONFIG.yaml [--key value ...]" >&2; exit 2; fi
: "${MASTER_ADDR:?set MASTER_ADDR to node 0's address}" "${NNODES:?set NNODES}" "${NODE_RANK:?set NODE_RANK (0..NNODES-1)}"
PER_NODE="$1"; CONFIG="$2"; shift 2
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec msrun --bind_core=True --worker_num $((NNODES * PER_NODE)) --local_worker_num "$PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "${MASTER_PORT:-8118}" --node_rank "$NODE_RANK" \
  --log_dir "${LOG_DIR:-msrun_logs}" --join True \
  python train.py --config "$CONFIG" --distribute True "$@"
