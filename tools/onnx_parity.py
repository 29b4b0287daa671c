#!/usr/bin/env python3
"""ONNX-side parity of an emoedge int8 model, against what tract and the engine computed.

Usage: onnx_parity.py MODEL.onnx CASES_DIR
CASES_DIR holds `inputs.u8` (N x 48 x 48 gray pixels), `tract.i8` and `engine.i8` (N x 7 int8
logits) and `out_quant.txt` ("scale zero_point" of the logits). Checks, each printed with
its counts, and the exit status 1 if any fails:
  - onnx.checker.check_model(full_check=True) passes;
  - the ONNX reference evaluator gives the same int8 logits as the engine on every image
    (both round `acc * scale` exactly, ties to even), and within 1 LSB of tract (tract
    requantizes per-channel scales in f32, which can flip a near-tie by one step);
  - onnxruntime gives the same label as tract on >= 99.9% of images, logits within 1 LSB.
"""
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator


def to_int8(logits, scale, zp):
    return np.clip(np.round(logits / scale) + zp, -128, 127).astype(np.int8)


def main():
    model_path, cases = Path(sys.argv[1]), Path(sys.argv[2])
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    print("onnx.checker full_check: ok")
    x = np.fromfile(cases / "inputs.u8", dtype=np.uint8).reshape(-1, 1, 48, 48).astype(np.float32) / 255.0
    tract = np.fromfile(cases / "tract.i8", dtype=np.int8).reshape(-1, 7)
    engine = np.fromfile(cases / "engine.i8", dtype=np.int8).reshape(-1, 7)
    scale, zp = (float(v) for v in (cases / "out_quant.txt").read_text().split())
    n = len(x)
    ref = ReferenceEvaluator(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    ref_q = np.stack([to_int8(ref.run(None, {"input": x[i : i + 1]})[0][0], scale, zp) for i in range(n)])
    ort_q = np.stack([to_int8(sess.run(None, {"input": x[i : i + 1]})[0][0], scale, zp) for i in range(n)])
    failures = []
    same_ref = int((ref_q == tract).all(axis=1).sum())
    ref_lsb = int(np.abs(ref_q.astype(int) - tract.astype(int)).max())
    print(f"reference evaluator == tract (all 7 logits): {same_ref}/{n}, max difference {ref_lsb} LSB")
    if ref_lsb > 1:
        failures.append("reference evaluator and tract differ by more than 1 LSB")
    eng_ref = int((engine == ref_q).all(axis=1).sum())
    print(f"reference evaluator == engine (all 7 logits): {eng_ref}/{n}")
    if eng_ref != n:
        failures.append("reference evaluator and engine differ")
    lsb = np.abs(ort_q.astype(int) - tract.astype(int)).max(axis=1)
    labels = int((ort_q.argmax(axis=1) == tract.argmax(axis=1)).sum())
    print(f"onnxruntime vs tract: same label {labels}/{n}, max logit difference {lsb.max()} LSB, {int((lsb > 1).sum())} over 1 LSB")
    if labels < 0.999 * n or lsb.max() > 1:
        failures.append("onnxruntime disagrees with tract")
    eng = int((engine == tract).all(axis=1).sum())
    print(f"engine == tract (all 7 logits): {eng}/{n}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("parity ok")


if __name__ == "__main__":
    main()
