"""Compares the faces two pipelines found on the same frames: JSON lines with `faces`
(a list of {box: [x, y, w, h]}), frame by frame in order. Prints how many boxes of the
reference (first file) the other matched at IoU >= 0.5, and the extra boxes it has."""
import json, sys

def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)

def frames(path):
    with open(path) as f:
        return [json.loads(l)["faces"] for l in f if l.strip().startswith("{") and '"faces"' in l]

ref, other = frames(sys.argv[1]), frames(sys.argv[2])
if len(ref) != len(other):
    sys.exit(f"frame counts differ: {len(ref)} vs {len(other)}")
total = matched = extra = 0
for r, o in zip(ref, other):
    rb, ob = [f["box"] for f in r], [f["box"] for f in o]
    hit = sum(any(iou(a, b) >= 0.5 for b in ob) for a in rb)
    total += len(rb)
    matched += hit
    extra += sum(not any(iou(a, b) >= 0.5 for a in rb) for b in ob)
print(json.dumps({"reference_boxes": total, "matched": matched, "extra": extra,
                  "recall": matched / max(total, 1)}))
