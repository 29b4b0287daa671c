"""Makes the benchmark video: every photo of ../shared/data/faces letterboxed into a
640x480 gray frame and held for --hold frames, written as raw 8-bit gray frames (the format
of `emoedge-pi --stdin 640x480` and of `ffmpeg -f rawvideo -pix_fmt gray`)."""
import argparse, os, sys
import cv2
import numpy as np

W, H = 640, 480

def letterbox(img):
    s = min(W / img.shape[1], H / img.shape[0])
    w, h = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    out = np.zeros((H, W), np.uint8)
    x, y = (W - w) // 2, (H - h) // 2
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    out[y:y + h, x:x + w] = cv2.resize(img, (w, h), interpolation=interp)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", default=os.path.join(os.environ.get("EMOEDGE_DATA", "../shared/data"), "faces"))
    ap.add_argument("--hold", type=int, default=10)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not os.path.isdir(a.faces):
        sys.exit(f"no faces folder at {a.faces} (set EMOEDGE_DATA)")
    names = sorted(f for f in os.listdir(a.faces) if f.lower().endswith((".png", ".jpg", ".jpeg")))
    n = 0
    with open(a.out + ".tmp", "wb") as out:
        for name in names:
            img = cv2.imread(os.path.join(a.faces, name), cv2.IMREAD_GRAYSCALE)
            if img is None:
                sys.exit(f"{name}: unreadable image")
            frame = letterbox(img).tobytes()
            for _ in range(a.hold):
                out.write(frame)
                n += 1
    os.replace(a.out + ".tmp", a.out)
    print(f"{n} frames of {W}x{H} from {len(names)} photos -> {a.out}", file=sys.stderr)

main()
