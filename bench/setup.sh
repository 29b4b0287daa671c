#!/usr/bin/env bash
# Creates bench/.venv with the Python peers of the benchmarks (idempotent).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
"$here/.venv/bin/python" - <<'PY'
import cv2, numpy, tensorflow as tf, torch
print("bench venv:", "opencv", cv2.__version__, "tensorflow", tf.__version__, "torch", torch.__version__, "numpy", numpy.__version__)
PY
