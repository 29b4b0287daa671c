"""The tutorial's webcam loop, as the peer of `emoedge-pi`: OpenCV's Haar cascade
(detectMultiScale(scaleFactor=1.1, minNeighbors=5)), crop, resize to 48x48, and one Keras
`predict` per face with a model of the tutorial's architecture. Its weights are random:
the figure measured is speed, and the network's cost does not depend on its weights.

Reads raw 640x480 gray frames (bench/make_stream.py) and writes one JSON line per frame
(boxes found) to --boxes, then a summary line with frames/s and per-stage milliseconds."""
import argparse, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import cv2
import numpy as np
import keras
from keras import layers

def tutorial_model():
    return keras.Sequential([
        keras.Input((48, 48, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(7, activation="softmax"),
    ])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stream")
    ap.add_argument("--cascade", required=True)
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--size", default="640x480")
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    model = tutorial_model()
    assert model.count_params() == 2_345_607, model.count_params()
    cascade = cv2.CascadeClassifier(a.cascade)
    if cascade.empty():
        sys.exit(f"cannot load {a.cascade}")
    labels = ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
    stage = {"decode": 0.0, "detect": 0.0, "crop": 0.0, "infer": 0.0}
    frames = faces = 0
    # warm-up, as a camera loop would be warm after its first frames
    model.predict(np.zeros((1, 48, 48, 1), np.float32), verbose=0)
    start = time.perf_counter()
    with open(a.stream, "rb") as f, open(a.boxes, "w") as out:
        while True:
            t0 = time.perf_counter()
            buf = f.read(w * h)
            if len(buf) < w * h:
                break
            gray = np.frombuffer(buf, np.uint8).reshape(h, w)
            t1 = time.perf_counter()
            rects = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
            t2 = time.perf_counter()
            found = []
            for (x, y, fw, fh) in rects:
                t3 = time.perf_counter()
                roi = gray[y:y + fh, x:x + fw]
                crop = np.expand_dims(np.expand_dims(cv2.resize(roi, (48, 48)), -1), 0) / 255.0
                t4 = time.perf_counter()
                p = model.predict(crop, verbose=0)
                t5 = time.perf_counter()
                stage["crop"] += t4 - t3
                stage["infer"] += t5 - t4
                found.append({"box": [int(x), int(y), int(fw), int(fh)], "label": labels[int(np.argmax(p))]})
            stage["decode"] += t1 - t0
            stage["detect"] += t2 - t1
            frames += 1
            faces += len(found)
            out.write(json.dumps({"frame": frames - 1, "faces": found}) + "\n")
    secs = time.perf_counter() - start
    n = max(frames, 1)
    print(json.dumps({
        "frames": frames, "faces": faces, "fps": frames / secs,
        "ms_per_frame": {k: v * 1e3 / n for k, v in stage.items()},
    }))

main()
