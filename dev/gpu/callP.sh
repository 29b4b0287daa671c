# Call P [.gl, .gpuA, .gpuT]: unpack the binary and the test split into /tmp (they stay
# there while the machine is warm, so the next call need not carry them: binary, train
# split and teachers together exceed the 64 MiB a call may carry), then time edge-wide at
# batch 128 for 3 epochs on the test split, alone and three runs at once.
T0=$(date +%s); source dev/gpu/setup.sh; nvidia-smi -L
mkdir -p /tmp/pd && ln -sfn $D/test /tmp/pd/train && ln -sfn $D/test /tmp/pd/test
$E train --data /tmp/pd --arch edge-wide --epochs 3 --batch 128 --out /tmp/p1 2>&1 | grep -a '^epoch\|rror'
for i in 1 2 3; do ($E train --data /tmp/pd --arch edge-wide --epochs 3 --batch 128 --out /tmp/p3$i 2>&1 | grep -a '^epoch\|rror' | sed "s/^/p3$i /") & done; wait
echo "elapsed $(( $(date +%s) - T0 )) s"
