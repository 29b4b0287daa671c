"""A training recipe's figures over seeds: one row per seed and their mean ± sample sd.

Usage: python3 tools/recipe_stats.py DIR [DIR ...]
  Each DIR holds one seed's reports, written by
    emoedge eval        --model M --json DIR/eval.json
    emoedge eval-camera --model M --data $EMOEDGE_DATA/fer2013/train --faces 1000 \
                        --json DIR/camera-train.json
    emoedge eval-camera --model M --json DIR/camera-test.json
  for the seed's int8 model folder M. A missing camera report leaves its columns empty.
Prints a Markdown table: `test` accuracy, disgust recall, and for each camera stream the
accuracy through the pipeline on the faces it found, direct on the same faces, their gap
(direct minus through) and end to end (a face not found counts as wrong), all in %.
Why: the model card gives a recipe as the mean ± sd of three seeds, not one lucky run;
this computes it the same way every time, from files a reader can regenerate.
"""
import json
import os
import statistics
import sys

COLUMNS = ["test direct", "disgust recall"] + [
    f"{stream} {what}"
    for stream in ("train stream", "test stream")
    for what in ("through", "direct", "gap (pp)", "end to end")
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"{path}: cannot read the report: {e}")


def camera(path):
    report = load(path)
    if report is None:
        return [None] * 4
    try:
        o = report["overall"]
        through, direct = 100 * o["found_accuracy"], 100 * o["found_direct_accuracy"]
        return [through, direct, direct - through, 100 * o["end_to_end_accuracy"]]
    except (KeyError, TypeError):
        sys.exit(f"{path}: not an `emoedge eval-camera` report (no overall figures)")


def row(folder):
    path = os.path.join(folder, "eval.json")
    report = load(path)
    if report is None:
        sys.exit(f"{path}: missing (write it with `emoedge eval --json`)")
    try:
        recall = {c["class"]: c["recall"] for c in report["per_class"]}
        disgust = next(v for k, v in recall.items() if k.startswith("disgust"))
        direct = 100 * report["accuracy"]
    except (KeyError, TypeError, StopIteration):
        sys.exit(f"{path}: not an `emoedge eval` report with a disgust class")
    return (
        [direct, 100 * disgust]
        + camera(os.path.join(folder, "camera-train.json"))
        + camera(os.path.join(folder, "camera-test.json"))
    )


def cell(v):
    return "—" if v is None else f"{v:.2f}"


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}"


def main():
    folders = sys.argv[1:]
    if not folders or any(f in ("-h", "--help") for f in folders):
        sys.exit(__doc__)
    rows = [row(f) for f in folders]
    print("| seed | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for folder, r in zip(folders, rows):
        name = os.path.basename(os.path.normpath(folder))
        print(f"| {name} | " + " | ".join(cell(v) for v in r) + " |")
    means = [summary(col) for col in zip(*rows)]
    print(f"| mean ± sample sd ({len(rows)}) | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
