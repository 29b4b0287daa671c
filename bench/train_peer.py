"""PyTorch CPU peer of `emoedge bench train`: the identical network (built from the same
config.json block list), batch 64, forward + soft-target cross-entropy + backward + AdamW
step, median images/s over the measured steps after 3 warm-up steps."""
import argparse, json, statistics, time
import torch
from torch import nn

def build(blocks):
    layers, c, hw, flat = [], 1, 48, None
    denses = [i for i, b in enumerate(blocks) if b["op"] == "dense"]
    for i, b in enumerate(blocks):
        op = b["op"]
        if op in ("conv", "depthwise", "pointwise"):
            if op == "conv":
                k, s, out, bn = b["k"], b["stride"], b["out"], b["bn"]
                pad, groups = (k // 2 if b["same"] else 0), 1
            elif op == "depthwise":
                k, s, out, bn, pad, groups = b["k"], b["stride"], c, True, b["k"] // 2, c
            else:
                k, s, out, bn, pad, groups = 1, 1, b["out"], True, 0, 1
            layers.append(nn.Conv2d(c, out, k, s, pad, groups=groups, bias=not bn))
            if bn:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            hw = (hw + 2 * pad - k) // s + 1
            c = out
        elif op == "max_pool":
            layers.append(nn.MaxPool2d(2))
            hw //= 2
        elif op == "dropout":
            layers.append(nn.Dropout(b["p"]))
        elif op == "global_avg_pool":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            flat = c
        elif op == "flatten":
            layers.append(nn.Flatten())
            flat = c * hw * hw
        elif op == "dense":
            layers.append(nn.Linear(flat, b["out"]))
            if i != denses[-1]:
                layers.append(nn.ReLU())
            flat = b["out"]
        else:
            raise SystemExit(f"unknown block {op}")
    return nn.Sequential(*layers)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.manual_seed(1)
    model = build(json.load(open(a.config))["blocks"])
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = (torch.arange(a.batch * 48 * 48) % 251).float().reshape(a.batch, 1, 48, 48) / 251
    y = torch.arange(a.batch) % 7
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    times = []
    model.train()
    for step in range(a.steps + 3):
        t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        if step >= 3:
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(f"pytorch {torch.__version__} on {torch.get_num_threads()} threads: {params} params, "
          f"{a.batch / (ms / 1e3):.1f} images/s (median of {a.steps} steps, {ms:.1f} ms/step)")

main()
