#!/usr/bin/env bash
# Run once on an Ascend host before a long job: toolkit and devices visible, MindSpore's dry run of the job's
# graph, then N sunk steps of the recipe on synthetic images (compile time, ms/step, img/s) written as JSON beside
# MindCV's published figures.
#   bash scripts/ascend_preflight.sh configs/shufflenetv2/shufflenet_v2_x0_5_ascend.yaml --workers 8
#   bash scripts/ascend_preflight.sh CONFIG --device CPU     # the stages a CPU can run, NPU-only ops as stand-ins
# Without the Ascend toolkit it says so in one line and exits 2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python -m mindcv_shufflenet.preflight "$@"
