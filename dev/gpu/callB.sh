# Call B (+ train split): train the teacher for as long as this call allows.
T0=$(date +%s); source dev/gpu/setup.sh
echo "setup $(( $(date +%s) - T0 )) s"; ls $D/train | head -3
EP=${EP:?}; echo $EP > /tmp/runs/teacher.epochs
timeout $(( 580 - ($(date +%s) - T0) )) $E train --data $D --arch teacher --epochs $EP --batch 128 --lr 1e-3 --out /tmp/runs/teacher 2>&1 | log $OUT/teacher.log
cp /tmp/runs/teacher/ckpt/state.json $OUT/ 2>/dev/null
echo "elapsed $(( $(date +%s) - T0 )) s"
