#!/usr/bin/env bash
# Training throughput, Burn (emoedge bench train) against PyTorch CPU on the identical
# network, batch 64, same machine, same run. Usage: bench/train.sh [ARCH] [STEPS]
# Last line: `burn/pytorch = <ratio>`.
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-edge}"
steps="${2:-20}"
bench/setup.sh train >/dev/null
mkdir -p bench/out
# `cargo run`, not target/release/emoedge: the binary is wherever CARGO_TARGET_DIR puts it.
burn=$(cargo run -q --release -p emoedge --bin emoedge -- bench train --arch "$arch" \
  --steps "$steps" --save-config "bench/out/$arch.config.json" 2>&1 | tail -1)
echo "$burn"
torch=$(bench/.venv/bin/python bench/train_peer.py "bench/out/$arch.config.json" --steps "$steps")
echo "$torch"
b=$(echo "$burn" | sed -E 's/.*: ([0-9.]+) images\/s.*/\1/')
t=$(echo "$torch" | sed -E 's/.*: [0-9]+ params, ([0-9.]+) images\/s.*/\1/')
python3 -c "print(f'burn/pytorch = {$b / $t:.2f}')"
