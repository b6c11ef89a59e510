#!/usr/bin/env bash
# Data parallel over several machines. Run the same command on every node, with its own NODE_RANK:
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 bash scripts/train_msrun_multinode.sh 8 CONFIG.yaml --data_dir ...
#   MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=1 bash scripts/train_msrun_multinode.sh 8 CONFIG.yaml --data_dir ...
# MASTER_ADDR is node 0's address, reachable from every node on MASTER_PORT (default 8118). Every node
# needs the code, the environment and the data at the same paths; checkpoints are written by global
# rank 0 (on node 0) into ckpt_save_dir. Global rank = NODE_RANK * DEVICES_PER_NODE + local rank.
# Worker logs go to $LOG_DIR (default ./msrun_logs/worker_<global rank>.log) on each node. BIND_CORE=False
# turns off msrun's binding of each worker to its own CPU cores (default True).
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 DEVICES_PER_NODE CONFIG.yaml [--key value ...]" >&2; exit 2; fi
if [ -z "${MASTER_ADDR:-}" ] || [ -z "${NNODES:-}" ] || [ -z "${NODE_RANK:-}" ]; then
  echo "error: set MASTER_ADDR (the address of node 0), NNODES and NODE_RANK (0..NNODES-1), e.g." \
    "MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 bash $0 $*" >&2
  exit 2
fi
PER_NODE="$1"; CONFIG="$2"; shift 2

is_count() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ]; }
is_count "$PER_NODE" 1 || { echo "error: DEVICES_PER_NODE must be a whole number >= 1, got '$PER_NODE'" >&2; exit 2; }
is_count "$NNODES" 1 || { echo "error: NNODES must be a whole number >= 1, got '$NNODES'" >&2; exit 2; }
if ! is_count "$NODE_RANK" 0 || [ "$NODE_RANK" -ge "$NNODES" ]; then
  echo "error: NODE_RANK must be one of 0..$((NNODES - 1)) (NNODES=$NNODES), got '$NODE_RANK'" >&2; exit 2
fi

source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec msrun --bind_core="${BIND_CORE:-True}" --worker_num $((NNODES * PER_NODE)) --local_worker_num "$PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "${MASTER_PORT:-8118}" --node_rank "$NODE_RANK" \
  --log_dir "${LOG_DIR:-msrun_logs}" --join True \
  python train.py --config "$CONFIG" --distribute True "$@"
