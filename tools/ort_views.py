"""Accuracy of a shipped int8 ONNX when each face's class probabilities are averaged over
several views of it: the face, its mirror, and shifted copies (edges replicated).

Usage: .venv/bin/python tools/ort_views.py MODEL_DIR [DATA_SPLIT_DIR]
  DATA_SPLIT_DIR: a FER2013-style split (`<class>/*.png`, 48x48 gray); default
  $EMOEDGE_DATA/fer2013/test.
Why: distillation averages each teacher's probabilities over a face and its mirror
(`emoedge train --teacher`); this says whether more views would make a stronger teacher.
"""
import os, sys
import numpy as np
import onnxruntime as ort
from png_gray import png_gray

CLASSES = ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
SHIFTS = [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (2, 2), (-2, -2), (2, -2), (-2, 2)]


def main():
    model_dir = sys.argv[1]
    split = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.environ.get("EMOEDGE_DATA", "../shared/data"), "fer2013", "test")
    onnx_model = ort.InferenceSession(os.path.join(model_dir, "model.int8.onnx"))
    name = onnx_model.get_inputs()[0].name
    faces, labels = [], []
    for truth, c in enumerate(CLASSES):
        folder = os.path.join(split, c)
        for f in sorted(os.listdir(folder)):
            faces.append(png_gray(os.path.join(folder, f)))
            labels.append(truth)
    faces = np.stack(faces).astype(np.float32) / 255.0
    labels = np.array(labels)

    def probabilities(x):
        out = []
        for face in x:
            z = onnx_model.run(None, {name: face.reshape(1, 1, 48, 48)})[0].ravel()
            e = np.exp(z - z.max())
            out.append(e / e.sum())
        return np.stack(out)

    padded = np.pad(faces, ((0, 0), (4, 4), (4, 4)), mode="edge")
    views = {}
    for dx, dy in SHIFTS:
        shifted = padded[:, 4 + dy:52 + dy, 4 + dx:52 + dx]
        views[(dx, dy, False)] = probabilities(shifted)
        views[(dx, dy, True)] = probabilities(shifted[:, :, ::-1])

    def accuracy(keys):
        return 100 * (sum(views[k] for k in keys).argmax(1) == labels).mean()

    print(f"{len(labels)} faces of {split}, onnxruntime {ort.__version__}")
    print(f"the face alone:              {accuracy([(0, 0, False)]):.2f}%")
    print(f"face and mirror:             {accuracy([(0, 0, False), (0, 0, True)]):.2f}%")
    five = [(dx, dy, m) for dx, dy in SHIFTS[:5] for m in (False, True)]
    print(f"5 shifts (2 px) and mirrors: {accuracy(five):.2f}%")
    print(f"9 shifts (2 px) and mirrors: {accuracy(list(views)):.2f}%")


if __name__ == "__main__":
    main()
