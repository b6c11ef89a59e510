# shellcheck shell=bash
# Sourced by the other scripts: create (or reuse) .venv with the project and its test, demo and deploy dependencies.
# PYTHON picks the interpreter (default python3; MindSpore 2.10 has wheels for Python 3.10-3.12).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed-$(cksum < "$ROOT/pyproject.toml" | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
  echo "installing mindcv-shufflenet and its dependencies into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # setuptools announces every editable install with a warning a user need not read.
  PYTHONWARNINGS="ignore:Editable installation" "$VENV/bin/python" -m pip install --quiet -e "${ROOT}[test,demo,deploy]"
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
