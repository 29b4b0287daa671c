#!/usr/bin/env bash
# End-to-end camera pipeline benchmark: emoedge-pi against the tutorial's Python loop
# (OpenCV Haar + Keras predict per face) on the same 640x480 frames, same machine, same run.
# Usage: bench/pipeline.sh [HOLD]  (each faces photo is held for HOLD frames; default 13, prime, so photo changes fall between detections)
set -euo pipefail
cd "$(dirname "$0")/.."
hold="${1:-13}"
bench/setup.sh pipeline >/dev/null
py=bench/.venv/bin/python
out=bench/out
mkdir -p "$out"
cascade=models/haarcascade_frontalface_alt2.xml
"$py" bench/make_stream.py --out "$out/stream.gray" --hold "$hold"
cargo build -q --release -p emoedge-pi
pi="${CARGO_TARGET_DIR:-target}/release/emoedge-pi"

echo "== tutorial pipeline (Python: OpenCV detectMultiScale 1.1/5 + Keras predict per face)"
"$py" bench/tutorial_pipeline.py "$out/stream.gray" --cascade "$cascade" \
  --boxes "$out/tutorial.jsonl" | tee "$out/tutorial.json"
py_fps=$("$py" -c "import json,sys; print(json.load(open('$out/tutorial.json'))['fps'])")

run() {  # name, then emoedge-pi flags
  local name="$1"; shift
  "$pi" --stdin 640x480 "$@" < "$out/stream.gray" > "$out/$name.jsonl" 2> "$out/$name.log"
  local summary fps
  summary=$(tail -1 "$out/$name.log")
  fps=$(echo "$summary" | sed -E 's/.* ([0-9.]+) frames\/s.*/\1/')
  echo "== emoedge-pi $* : $summary"
  echo "   faces vs tutorial: $("$py" bench/compare_boxes.py "$out/tutorial.jsonl" "$out/$name.jsonl")"
  echo "   emoedge-pi/tutorial fps = $("$py" -c "print(round($fps / $py_fps, 2))")"
}
run core-every1 --runtime engine
run tract-every1 --runtime tract
run core-every3-blind --runtime engine --detect-every 3 --redetect-change 0
run core-every5-blind --runtime engine --detect-every 5 --redetect-change 0
run core-every5 --runtime engine --detect-every 5
run tract-every5 --runtime tract --detect-every 5
run core-every10 --runtime engine --detect-every 10
run core-w320 --runtime engine --detect-width 320
