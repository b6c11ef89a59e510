#!/usr/bin/env bash
# The demo: train ShuffleNet V2 0.5x on scikit-learn's handwritten digits on the CPU (no download), then
# evaluate its best checkpoint with validate.py. About two minutes on 2 cores.
#   bash scripts/demo.sh [--key value ...]     (extra arguments go to train.py, e.g. --epoch_size 5)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
CONFIG=configs/demo/shufflenet_v2_digits_cpu.yaml
DATA="${DEMO_DATA:-data/digits}"
RUN="${DEMO_OUTPUT:-output/digits_demo}"

python -m mindcv_shufflenet.data.digits --out "$DATA"
python train.py --config "$CONFIG" --data_dir "$DATA" --ckpt_save_dir "$RUN" "$@"
echo
echo "== validate.py on the best checkpoint =="
python validate.py --config "$CONFIG" --data_dir "$DATA" --ckpt_path "$RUN/shufflenet_v2_x0_5-best.ckpt" \
  --json "$RUN/validate.json"
python - "$RUN/validate.json" <<'PY'
import json, sys
top1 = json.load(open(sys.argv[1]))["top1"]
print(f"demo: validation top-1 {top1:.2f}% (expected at least 90%); curves in {sys.argv[1].rsplit('/', 1)[0]}/curves.png")
sys.exit(0 if top1 >= 90 else 1)
PY
