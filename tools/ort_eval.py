"""Accuracy of a shipped int8 ONNX in onnxruntime, and whether it matches `emoedge eval`.

Usage: .venv/bin/python tools/ort_eval.py MODEL_DIR DATA_SPLIT_DIR [EVAL_JSON]
  DATA_SPLIT_DIR: a FER2013-style split (`<class>/*.png`, 48x48 gray), e.g.
  ../shared/data/fer2013/test. EVAL_JSON: from `emoedge eval --model MODEL_DIR --json FILE`
  on the same split; when given, the exit status is 1 unless onnxruntime's confusion matrix
  equals it cell for cell (the same labels, class by class).
Why: tract and the engine are checked against each other by `emoedge verify`; this says
that a third, independent runtime reads the exported ONNX the same way.
"""
import json, os, sys
import numpy as np
import onnxruntime as ort
from png_gray import png_gray

CLASSES = ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]


def main():
    model_dir, split = sys.argv[1], sys.argv[2]
    ort_model = ort.InferenceSession(os.path.join(model_dir, "model.int8.onnx"))
    inp = ort_model.get_inputs()[0]
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    for truth, name in enumerate(CLASSES):
        folder = os.path.join(split, name)
        for f in sorted(os.listdir(folder)):
            img = png_gray(os.path.join(folder, f)).astype(np.float32) / 255.0
            logits = ort_model.run(None, {inp.name: img.reshape(1, 1, 48, 48)})[0].ravel()
            confusion[truth, int(logits.argmax())] += 1
    n = int(confusion.sum())
    print(f"onnxruntime {ort.__version__}: accuracy {np.trace(confusion) / n:.4f} ({n} images)")
    if len(sys.argv) > 3:
        theirs = json.load(open(sys.argv[3]))["confusion"]["counts"]
        same = confusion.tolist() == theirs
        print(f"confusion matrix equal to {sys.argv[3]}'s: {same}")
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
