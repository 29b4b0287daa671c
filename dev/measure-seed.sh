#!/usr/bin/env bash
# Measures one seed of a training recipe the way the model card reports it, from its run
# folder: the last epoch with BatchNorm statistics re-estimated on the plain training images
# (`average --bn-plain`), int8 (`quantize`), `test` direct (float and int8), and through the
# camera pipeline on 1,000 `train` faces and on all of `test` (`eval-camera`). The reports
# land where `tools/recipe_stats.py` reads them.
#
# Usage: dev/measure-seed.sh RUN NAME [OUT]
#   RUN   a finished training run folder
#   NAME  a name for this seed (e.g. trio-s1)
#   OUT   where to write [default: ~/emoedge-runs]: OUT/NAME-float (float model folder),
#         OUT/NAME (int8 model folder), OUT/reports/NAME (eval.json, eval-float.json,
#         camera-train.json, camera-test.json and each command's log)
# Env: EMOEDGE (the CLI binary) [default: the release build, built if missing];
#      EMOEDGE_DATA (the data folder) [default: ../shared/data].
# Steps whose output exists are skipped, so an interrupted run continues where it stopped.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi
# Paths as given, before the script moves to the repository root.
run=$(realpath -m -- "$1")
name=$2
out=$(realpath -m -- "${3:-$HOME/emoedge-runs}")
cd "$(dirname "$0")/.."
export EMOEDGE_DATA=${EMOEDGE_DATA:-../shared/data}
emoedge=${EMOEDGE:-${CARGO_TARGET_DIR:-target}/release/emoedge}
if [[ ! -x $emoedge ]]; then
    cargo build --release -p emoedge
fi
[[ -f $run/metrics.csv ]] || { echo "$run: no metrics.csv: not a training run folder" >&2; exit 1; }
# The last epoch the run finished (metrics.csv has a header line, then one line per epoch);
# a recipe's figure is its last epoch, so an unfinished run is refused.
last=$(($(wc -l < "$run/metrics.csv") - 1))
epochs=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["epochs"])' "$run/train.json") ||
    { echo "$run/train.json: cannot read the run's epoch count" >&2; exit 1; }
[[ $last -eq $epochs ]] ||
    { echo "$run: $last of $epochs epochs finished; finish it with \`emoedge train --out $run --resume\`" >&2; exit 1; }

float=$out/$name-float
int8=$out/$name
if [[ $run == "$float" || $run == "$int8" ]]; then
    echo "$run: the run folder would be written over; pick a NAME or OUT that differs from it" >&2
    exit 1
fi
reports=$out/reports/$name
mkdir -p "$reports"
step() { # step LOG COMMAND...: run a step, its output in LOG, say where to look if it fails
    local log=$1
    shift
    echo "$(date -u +%H:%M:%S) $*" >&2
    "$@" > "$log" 2>&1 || { echo "failed; see $log" >&2; exit 1; }
}
[[ -f $float/model.bpk ]] ||
    step "$reports/average.log" "$emoedge" average "$run" --epochs "$last-$last" --bn-plain --out "$float"
[[ -f $reports/eval-float.json ]] ||
    step "$reports/eval-float.log" "$emoedge" eval --model "$float" --json "$reports/eval-float.json"
[[ -f $int8/model.blob ]] ||
    step "$reports/quantize.log" "$emoedge" quantize --model "$float" --out "$int8"
[[ -f $reports/eval.json ]] ||
    step "$reports/eval.log" "$emoedge" eval --model "$int8" --form engine --json "$reports/eval.json"
[[ -f $reports/camera-train.json ]] ||
    step "$reports/camera-train.log" "$emoedge" eval-camera --model "$int8" \
        --data "$EMOEDGE_DATA/fer2013/train" --faces 1000 --json "$reports/camera-train.json"
[[ -f $reports/camera-test.json ]] ||
    step "$reports/camera-test.log" "$emoedge" eval-camera --model "$int8" --json "$reports/camera-test.json"
python3 tools/recipe_stats.py "$reports"
