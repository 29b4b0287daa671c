# Call S [.gl, .gpuB, .gpuT], right after callP.sh on the same warm machine: several
# students at once on one GPU, all taught by the model folders carried in .gpuT/ (the first
# run computes their targets, the others reuse them). Each run is `NAME TEACHER_WEIGHT SEED
# LR`; all are edge-wide, $EP epochs, batch $BATCH. A second call on the still-warm machine
# resumes whatever the first left unfinished. Everything comes back packed in $OUT (the tool
# returns at most 8 files).
T0=$(date +%s); source dev/gpu/setup.sh
[ -x /tmp/emoedge ] || { echo "no binary in /tmp: run callP.sh first on this warm machine"; exit 3; }
LIMIT=${LIMIT:-540}; EP=${EP:-70}; BATCH=${BATCH:-128}
RUNS=${RUNS:-"s1 0.5 42 2.8e-3;s2 0.7 43 2.8e-3;s3 0.5 44 2e-3"}
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
# Teachers without plain BatchNorm statistics (no average.json) get them first (MODEL.md).
TEACH=""; mkdir -p /tmp/teach
for t in .gpuT/*/; do t=${t%/}; n=$(basename $t)
  if [ -f $t/average.json ]; then cp -r $t /tmp/teach/; else
    [ -f /tmp/teach/$n/model.bpk ] || $E average $t --bn-plain --data $D --out /tmp/teach/$n 2>&1 | log /tmp/teach/$n.log; fi
  TEACH="$TEACH --teacher /tmp/teach/$n"
done
echo "setup $(( $(date +%s) - T0 )) s; teachers:$TEACH"; nvidia-smi -L
echo "$RUNS" | tr ';' '\n' > /tmp/runs.list; names=$(cut -d' ' -f1 /tmp/runs.list)
first=""
while read -r name tw seed lr; do
  if [ ! -f /tmp/runs/$name/train.json ]; then
    cache=""; [ -n "$first" ] && cache="--teacher-cache /tmp/runs/$first/teacher.bin"
    $E train --data $D --arch edge-wide --epochs $EP --batch $BATCH --lr $lr --seed $seed \
      $TEACH $cache --teacher-weight $tw --out /tmp/runs/$name --stop-after 0 </dev/null 2>&1 | log /tmp/runs/$name.log
  fi
  first=${first:-$name}
done < /tmp/runs.list
echo "targets done at $(( $(date +%s) - T0 )) s"
for r in $names; do
  (timeout $(left) $E train --data $D --out /tmp/runs/$r --resume 2>&1 | log /tmp/runs/$r.log >/dev/null) &
done
wait
for r in $names; do echo "== $r"; grep -a '^epoch' /tmp/runs/$r.log | tail -2; done | tee $OUT/summary.txt
# Pack: each run's final files, state and newest optimizer state (resume on any host), and
# its last ten epochs' weights (for `emoedge average --epochs`).
files="teach/*.log teach/*/average.json"
for r in $names; do
  s=/tmp/runs/$r/ckpt/state.json; [ -f $s ] || continue
  n=$(printf '%04d' $(grep -o '"epochs_done": *[0-9]*' $s | grep -o '[0-9]*$'))
  files="$files runs/$r.log runs/$r/ckpt/state.json runs/$r/ckpt/epoch-$n.optim.bpk"
  for k in $(seq $(( 10#$n > 9 ? 10#$n - 9 : 1 )) $(( 10#$n ))); do
    files="$files runs/$r/ckpt/epoch-$(printf '%04d' $k).model.bpk"; done
  for f in config.json train.json metrics.csv model.bpk teacher.bin; do
    [ -f /tmp/runs/$r/$f ] && files="$files runs/$r/$f"
  done
done
(cd /tmp && tar cf - $files) | xz -1 -T8 | split -b 15M - $OUT/students.tar.xz.
ls -la $OUT; echo "elapsed $(( $(date +%s) - T0 )) s"
