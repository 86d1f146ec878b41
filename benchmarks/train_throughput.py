"""Training throughput of `blendset train detect` against a plain torchvision loop, measured in the same run.

Both loops train the same model, on the same COCO data, batch size and image size, for the same number of steps,
in alternating repeats. Each is clocked from the end of its first step to the end of its last one (model building,
data checking and the first, warm-up step are outside the clock), on the wall clock and on this process's CPU
clock. The CPU-clock ratio is the fairer one on a shared, loaded machine (other processes do not inflate it; with
--workers 0 it includes data loading). Prints img/s for both, the ratios (target >= 1.0), and our loop's
data-loading wait as a share of step time (target < 5% on GPU).

    .venv/bin/python benchmarks/train_throughput.py                      # draws a small dataset, CPU
    .venv/bin/python benchmarks/train_throughput.py --data real/ --device cuda --model fasterrcnn_resnet50_fpn_v2 \\
        --batch-size 8 --steps 50 --min-size 800 --max-size 1333 --workers 8 --amp
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def plain_torchvision_loop(
    data: str,
    model_name: str,
    batch_size: int,
    steps: int,
    min_size: int,
    max_size: int,
    workers: int,
    device: str,
    amp: bool,
    seed: int,
    lr: float,
) -> dict:
    """The loop a user writes from torchvision's docs: CocoDetection wrapped for v2, shuffled DataLoader."""
    from torchvision import datasets
    from torchvision.models import get_model
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    ann = os.path.join(data, "annotations.json")
    images = os.path.join(data, "images") if os.path.isdir(os.path.join(data, "images")) else data
    ds = datasets.CocoDetection(images, ann, transforms=v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, True)]))
    ds = datasets.wrap_dataset_for_transforms_v2(ds, target_keys=("boxes", "labels"))
    num_classes = len(json.load(open(ann))["categories"])
    model = get_model(
        model_name,
        weights=None,
        weights_backbone=None,
        num_classes=num_classes + 1,
        min_size=min_size,
        max_size=max_size,
    ).to(device)
    # labels in torchvision's wrapper are the raw category ids: shift to 1..K so both loops learn the same task
    ids = sorted(c["id"] for c in json.load(open(ann))["categories"])
    shift = {cid: i + 1 for i, cid in enumerate(ids)}
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=lambda b: tuple(zip(*b, strict=True)),
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda") if amp and device.startswith("cuda") else None
    model.train()
    done, clock = 0, Clock()
    while done < steps:
        for imgs, targets in loader:
            imgs = [i.to(device) for i in imgs]
            targets = [
                {
                    "boxes": t["boxes"].to(device) if "boxes" in t else torch.zeros(0, 4, device=device),
                    "labels": torch.tensor(
                        [shift[int(x)] for x in t.get("labels", [])], dtype=torch.int64, device=device
                    ),
                }
                for t in targets
            ]
            with torch.autocast("cuda" if device.startswith("cuda") else "cpu", enabled=amp):
                loss = sum(model(imgs, targets).values())
            opt.zero_grad()
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            float(loss.detach())
            done += 1
            clock.tick(len(imgs), device)
            if done >= steps:
                break
    return clock.rates()


class Clock:
    """Wall and CPU time from the end of the first step to the end of the last, and the images in between."""

    def __init__(self):
        self.first = None
        self.last = None
        self.images = 0

    def tick(self, images: int, device: str) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        now = (time.perf_counter(), time.process_time())
        if self.first is None:
            self.first = now
        else:
            self.images += images
        self.last = now

    def rates(self) -> dict:
        wall, cpu = self.last[0] - self.first[0], self.last[1] - self.first[1]
        return {"img_s": self.images / wall, "img_cpu_s": self.images / cpu}


def blendset_loop(
    data: str,
    model_name: str,
    batch_size: int,
    steps: int,
    min_size: int,
    max_size: int,
    workers: int,
    device: str,
    amp: bool,
    seed: int,
    lr: float,
    out: str,
) -> dict:
    from trainer.training.detect import train_detector

    clock = Clock()
    result = train_detector(
        [data],
        out,
        model=model_name,
        epochs=1,
        batch_size=batch_size,
        lr=lr,
        weights="none",
        min_size=min_size,
        max_size=max_size,
        augment="none",
        seed=seed,
        device=device,
        workers=workers,
        amp=amp,
        warmup_iters=0,
        epoch_size=steps * batch_size,
        progress=lambda stats: clock.tick(batch_size, device),
    )
    train = result["history"][0]["train"]
    return {**clock.rates(), "data_wait": train["data_wait"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="COCO folder (default: draw 32 images of shapes)")
    p.add_argument("--model", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--min-size", type=int, default=128)
    p.add_argument("--max-size", type=int, default=160)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            sys.path.insert(
                0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "trainer")
            )
            from conftest import draw_shapes_dataset

            data = draw_shapes_dataset(os.path.join(tmp, "shapes"), n_images=32, size=(128, 160), seed=0)
        common = dict(
            data=data,
            model_name=args.model,
            batch_size=args.batch_size,
            steps=args.steps,
            min_size=args.min_size,
            max_size=args.max_size,
            workers=args.workers,
            device=args.device,
            amp=args.amp,
            seed=0,
            lr=args.lr,
        )
        ours, plain = [], []
        for r in range(args.repeats):  # alternate, so load changes on a shared machine hit both alike
            plain.append(plain_torchvision_loop(**common))
            ours.append(blendset_loop(**common, out=os.path.join(tmp, f"run{r}")))
            print(
                f"repeat {r}: blendset {ours[-1]['img_s']:.2f} img/s ({ours[-1]['img_cpu_s']:.2f} per CPU s), "
                f"plain {plain[-1]['img_s']:.2f} img/s ({plain[-1]['img_cpu_s']:.2f} per CPU s)",
                file=sys.stderr,
            )
    ours_ips = statistics.median(o["img_s"] for o in ours)
    plain_ips = statistics.median(o["img_s"] for o in plain)
    ours_cpu = statistics.median(o["img_cpu_s"] for o in ours)
    plain_cpu = statistics.median(o["img_cpu_s"] for o in plain)
    report = {
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "image_size": [args.min_size, args.max_size],
        "workers": args.workers,
        "amp": args.amp,
        "blendset_img_s": round(ours_ips, 3),
        "plain_img_s": round(plain_ips, 3),
        "ratio": round(ours_ips / plain_ips, 3),
        "blendset_img_per_cpu_s": round(ours_cpu, 3),
        "plain_img_per_cpu_s": round(plain_cpu, 3),
        "cpu_clock_ratio": round(ours_cpu / plain_cpu, 3),
        "per_repeat_ratio": [round(o["img_s"] / p["img_s"], 3) for o, p in zip(ours, plain, strict=True)],
        "blendset_data_wait_share": round(statistics.median(o["data_wait"] for o in ours), 4),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
