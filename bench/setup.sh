#!/usr/bin/env bash
# Creates bench/.venv with the Python peers of the benchmarks (idempotent).
# Usage: bench/setup.sh [pipeline|train|all]  (default all): pipeline needs OpenCV and
# TensorFlow (the tutorial's loop), train needs PyTorch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
what="${1:-all}"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
pip() { "$here/.venv/bin/pip" install -q "$@"; }
case "$what" in
  pipeline) pip numpy "opencv-python-headless<5" "tensorflow-cpu==2.21.*"; check="cv2, tensorflow" ;;
  train) pip numpy "torch==2.15.*"; check="torch" ;;
  all) pip -r "$here/requirements.txt"; check="cv2, tensorflow, torch" ;;
  *) echo "usage: bench/setup.sh [pipeline|train|all]" >&2; exit 2 ;;
esac
"$here/.venv/bin/python" -c "import numpy, $check; print('bench venv ($what) ready')"
