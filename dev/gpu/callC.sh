# Call C: finish the teacher, then cache its targets in student run folders (no epochs).
T0=$(date +%s); source dev/gpu/setup.sh
EP=$(cat /tmp/runs/teacher.epochs); T0=$(date +%s)
timeout $(( ${TLEFT:-440} - ($(date +%s) - T0) )) $E train --data $D --out /tmp/runs/teacher --resume --epochs $EP 2>&1 | log $OUT/teacher.log
for arch in ${STUDENTS:-edge-wide}; do
  $E train --data $D --arch $arch --epochs 70 --teacher /tmp/runs/teacher --teacher-weight ${TW:-0.5} --out /tmp/runs/s-$arch --stop-after 0 2>&1 | log $OUT/students.log
done
cp /tmp/runs/teacher/ckpt/state.json /tmp/runs/teacher/metrics.csv $OUT/
(cd /tmp && tar cf - runs/teacher/config.json runs/teacher/train.json runs/teacher/metrics.csv runs/teacher/model.bpk runs/s-*) | xz -1 -T8 | split -b 15M - $OUT/bundle.tar.xz.
echo "elapsed $(( $(date +%s) - T0 )) s"
