# Call W [.gl, .gpuA, .gpuT]: the first of two calls that train one run. Unpacks
# the binary and the test split into /tmp (they stay while the machine is warm; callS.sh
# follows at once with the train split), then compiles and tunes every kernel shape the
# real run will meet, so that callS.sh spends its time on epochs:
# - a probe train set of 3,365 test images, which like the train split (28,709) leaves a
#   last batch of 37 both at training's batch 128 and at inference's 256;
# - one distilled epoch on it (teachers' inference at 256 and 37, training steps at 128 and
#   37, the test evaluation's last batch of 5);
# - `average --bn-plain` on one teacher without statistics (its forward passes).
# Brings back CubeCL's autotune database (target/environment), which a later machine could
# carry to skip the tuning.
T0=$(date +%s); source dev/gpu/setup.sh; nvidia-smi -L
mkdir -p /tmp/pd/train && ln -sfn $D/test /tmp/pd/test
if [ ! -d /tmp/pd/train/angry ]; then
  ls -d $D/test/*/* | head -n 3365 | while read -r f; do
    c=$(basename $(dirname $f)); mkdir -p /tmp/pd/train/$c; ln -s $f /tmp/pd/train/$c/; done
fi
echo "probe: $(ls /tmp/pd/train/*/ | grep -c png) images; setup $(( $(date +%s) - T0 )) s"
TEACH=""; for t in .gpuT/*/; do TEACH="$TEACH --teacher ${t%/}"; done
$E train --data /tmp/pd --arch edge-wide --epochs 1 --batch 128 --lr 2.8e-3 $TEACH \
  --teacher-weight 0.7 --out /tmp/probe 2>&1 | log $OUT/warm.log | grep -a 'epoch\|rror\|teach'
echo "warm train done at $(( $(date +%s) - T0 )) s"
for t in .gpuT/*/; do [ -f $t/average.json ] && continue
  $E average ${t%/} --bn-plain --data /tmp/pd --out /tmp/probe-avg 2>&1 | log $OUT/warm.log | tail -2; break; done
ls -la target/environment 2>&1; (tar cf - target/environment 2>/dev/null | xz -1 > $OUT/environment.tar.xz)
echo "elapsed $(( $(date +%s) - T0 )) s"
