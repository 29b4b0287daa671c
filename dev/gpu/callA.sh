# Call A (binary + test split only): does Burn's wgpu backend run here, and how fast?
T0=$(date +%s); source dev/gpu/setup.sh
ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ 2>&1; nproc; nvidia-smi -L
mkdir -p /tmp/pd && ln -sfn $D/test /tmp/pd/train && ln -sfn $D/test /tmp/pd/test
cat /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; export VK_LOADER_DEBUG=error,warn; echo "setup $(( $(date +%s) - T0 )) s"
$E train --data /tmp/pd --arch edge-wide --epochs 1 --out /tmp/probe-ew 2>&1 | log $OUT/probe.log
$E train --data /tmp/pd --arch teacher --epochs 1 --batch 128 --lr 1e-3 --out /tmp/probe-t 2>&1 | log $OUT/probe.log
echo "elapsed $(( $(date +%s) - T0 )) s"
