"""Train an unpaired render→real translator: CUT, FastCUT (one-sided, contrastive) or CycleGAN (two-sided).

CUT (Park et al. 2020) keeps the content of a render by asking each output patch to be closer, in the generator's
own feature space, to the input patch at the same place than to any other input patch (PatchNCE). It needs one
generator and one discriminator, about half of CycleGAN's cost. FastCUT drops the identity NCE term and weights
the NCE term up. On top of either, an edge-consistency loss (see ``losses.edge_consistency_loss``) keeps every
edge of the render where it was, so COCO boxes and masks stay valid.

The run folder ``OUT`` holds ``checkpoint.pth`` (full training state, rewritten atomically every
``save_every`` steps: a killed run resumes from it), ``refiner.pth`` (the generator alone, what
``apply_refiner`` reads; both formats are in ``checkpoint.py``), ``metrics.jsonl`` (losses per logged step) and
``summary.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from shared.atomic import write_json
from shared.progress import ProgressFn, Step
from trainer.refine.checkpoint import (
    CHECKPOINT_FILE,
    REFINER_FILE,
    build_generator,
    generator_spec,
    load_refiner_file,
    refiner_record,
    save_refiner_file,
)
from trainer.refine.data import ArraySource, FolderSource, RefineError, random_crops
from trainer.refine.losses import (
    ImagePool,
    edge_consistency_loss,
    gan_loss,
    patch_nce_loss,
    set_requires_grad,
)
from trainer.refine.networks import PatchDiscriminator, PatchSampleMLP, ResnetGenerator, nce_channels

MODELS = ("cut", "fastcut", "cyclegan")


@dataclass
class RefineArgs:
    """Every training choice, stored in the checkpoint as a plain dict."""

    model: str = "cut"
    steps: int = 2000
    image_size: int = 64
    batch: int = 4
    lr: float = 5e-4  # above CUT's 2e-4: small real budgets, few thousand steps
    ngf: int = 16
    ndf: int = 16
    n_blocks: int = 4
    n_down: int = 0  # 0: chosen from image_size
    d_layers: int = 0  # 0: chosen from image_size
    lambda_gan: float = 1.0
    lambda_nce: float = 0.0  # 0: 1 for CUT, 10 for FastCUT
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_edge: float = 10.0
    num_patches: int = 128
    nce_temperature: float = 0.07
    seed: int = 0
    save_every: int = 200
    log_every: int = 10

    def resolved(self) -> RefineArgs:
        """Fill the size-dependent defaults and check values; raises RefineError naming the field."""
        if self.model not in MODELS:
            raise RefineError(f"model: unknown refiner {self.model!r}; choose from {', '.join(MODELS)}")
        for name in ("steps", "image_size", "batch", "ngf", "ndf", "num_patches"):
            if getattr(self, name) < 1:
                raise RefineError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.image_size < 8:
            raise RefineError(f"image_size: must be >= 8 pixels, got {self.image_size}")
        out = RefineArgs(**asdict(self))
        if out.n_down == 0:
            out.n_down = 1 if out.image_size < 32 else 2
        if out.d_layers == 0:
            out.d_layers = int(min(3, max(1, math.log2(out.image_size) - 3)))
        if out.lambda_nce == 0.0:
            out.lambda_nce = 10.0 if out.model == "fastcut" else 1.0
        return out


def _spec(args: RefineArgs) -> dict[str, int]:
    return generator_spec(args.ngf, args.n_down, args.n_blocks)


def _generator(args: RefineArgs) -> ResnetGenerator:
    return build_generator(_spec(args))


class _Nets:
    """The trainable pieces of one run and their optimizers."""

    def __init__(self, args: RefineArgs, device: str):
        self.args = args
        self.G = _generator(args).to(device)
        self.D = PatchDiscriminator(3, args.ndf, args.d_layers).to(device)
        betas = (0.5, 0.999)
        if args.model == "cyclegan":
            self.G_back = _generator(args).to(device)
            self.D_back = PatchDiscriminator(3, args.ndf, args.d_layers).to(device)
            g_params = list(self.G.parameters()) + list(self.G_back.parameters())
            d_params = list(self.D.parameters()) + list(self.D_back.parameters())
        else:
            self.mlp = PatchSampleMLP(nce_channels(self.G, 3)).to(device)
            g_params = list(self.G.parameters()) + list(self.mlp.parameters())
            d_params = list(self.D.parameters())
        self.opt_G = torch.optim.Adam(g_params, lr=args.lr, betas=betas)
        self.opt_D = torch.optim.Adam(d_params, lr=args.lr, betas=betas)

    def modules(self) -> dict[str, torch.nn.Module]:
        names = ["G", "D", "G_back", "D_back"] if self.args.model == "cyclegan" else ["G", "D", "mlp"]
        return {n: getattr(self, n) for n in names}

    def state(self) -> dict:
        return {
            "nets": {n: m.state_dict() for n, m in self.modules().items()},
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
        }

    def load(self, state: dict) -> None:
        for n, m in self.modules().items():
            m.load_state_dict(state["nets"][n])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])


def _nce(nets: _Nets, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    layers = nets.G.nce_layers
    feat_k = nets.G.encode(source, layers)
    feat_q = nets.G.encode(output, layers)
    k, ids = nets.mlp(feat_k, nets.args.num_patches)
    q, _ = nets.mlp(feat_q, nets.args.num_patches, ids)
    return patch_nce_loss(q, k, nets.args.nce_temperature)


def _step_cut(nets: _Nets, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    a = nets.args
    use_idt = a.model == "cut"
    both = torch.cat([x, y]) if use_idt else x
    out = nets.G(both)
    fake = out[: len(x)]
    # Discriminator.
    set_requires_grad(nets.D, True)
    nets.opt_D.zero_grad(set_to_none=True)
    loss_d = 0.5 * (gan_loss(nets.D(fake.detach()), False) + gan_loss(nets.D(y), True))
    loss_d.backward()
    nets.opt_D.step()
    # Generator and projection heads.
    set_requires_grad(nets.D, False)
    nets.opt_G.zero_grad(set_to_none=True)
    loss_gan = gan_loss(nets.D(fake), True)
    loss_nce = _nce(nets, x, fake)
    if use_idt:
        loss_nce = 0.5 * (loss_nce + _nce(nets, y, out[len(x) :]))
    loss_edge = edge_consistency_loss(x, fake)
    loss_g = a.lambda_gan * loss_gan + a.lambda_nce * loss_nce + a.lambda_edge * loss_edge
    loss_g.backward()
    nets.opt_G.step()
    return {"D": loss_d.item(), "G_gan": loss_gan.item(), "nce": loss_nce.item(), "edge": loss_edge.item()}


def _step_cyclegan(nets: _Nets, x: torch.Tensor, y: torch.Tensor, pools: tuple[ImagePool, ImagePool]) -> dict:
    a = nets.args
    l1 = torch.nn.functional.l1_loss
    set_requires_grad(nets.D, False)
    set_requires_grad(nets.D_back, False)
    nets.opt_G.zero_grad(set_to_none=True)
    fake_y = nets.G(x)
    fake_x = nets.G_back(y)
    loss_gan = gan_loss(nets.D(fake_y), True) + gan_loss(nets.D_back(fake_x), True)
    loss_cycle = l1(nets.G_back(fake_y), x) + l1(nets.G(fake_x), y)
    loss_idt = l1(nets.G(y), y) + l1(nets.G_back(x), x)
    loss_edge = edge_consistency_loss(x, fake_y) + edge_consistency_loss(y, fake_x)
    loss_g = (
        a.lambda_gan * loss_gan
        + a.lambda_cycle * loss_cycle
        + a.lambda_cycle * a.lambda_identity * loss_idt
        + a.lambda_edge * loss_edge
    )
    loss_g.backward()
    nets.opt_G.step()
    set_requires_grad(nets.D, True)
    set_requires_grad(nets.D_back, True)
    nets.opt_D.zero_grad(set_to_none=True)
    fy = pools[0].query(fake_y)
    fx = pools[1].query(fake_x)
    loss_d = 0.5 * (gan_loss(nets.D(fy), False) + gan_loss(nets.D(y), True))
    loss_d = loss_d + 0.5 * (gan_loss(nets.D_back(fx), False) + gan_loss(nets.D_back(x), True))
    loss_d.backward()
    nets.opt_D.step()
    return {"D": loss_d.item(), "G_gan": loss_gan.item(), "cycle": loss_cycle.item(), "edge": loss_edge.item()}


def _refiner_dict(nets: _Nets, args: RefineArgs, step: int) -> dict:
    return refiner_record(args.model, nets.G, _spec(args), step, asdict(args))


def _resume(path: str, nets: _Nets, args: RefineArgs, rng: np.random.Generator) -> int:
    """Load ``checkpoint.pth`` when it belongs to the same run settings; return the step to continue from."""
    if not os.path.exists(path):
        return 0
    ckpt = load_refiner_file(path)
    saved = {k: v for k, v in ckpt["args"].items() if k not in ("steps", "save_every", "log_every")}
    mine = {k: v for k, v in asdict(args).items() if k not in ("steps", "save_every", "log_every")}
    if saved != mine:
        diff = sorted(k for k in mine if saved.get(k) != mine[k])
        raise RefineError(f"{path} was trained with different settings ({', '.join(diff)}); use a new --out")
    nets.load(ckpt["train_state"])
    rng.bit_generator.state = json.loads(ckpt["rng_state"])
    torch.manual_seed(args.seed + ckpt["step"])
    return int(ckpt["step"])


def train_refiner(
    synthetic: str | np.ndarray,
    real: str | np.ndarray,
    out: str,
    model: str = "cut",
    steps: int = 2000,
    image_size: int = 64,
    batch: int = 4,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    **options,
) -> dict:
    """Train a refiner from renders (``synthetic``) to real images (``real``), write it under ``out``.

    ``synthetic`` / ``real``: a dataset folder (annotations.json), a folder of images, or an N x H x W (x C)
    array. ``options`` are further :class:`RefineArgs` fields (lr, lambda_edge, n_blocks, seed, ...).
    ``progress(Step("refine", step, steps, values=losses))`` is called every ``log_every`` steps. Returns the
    summary (also written to ``out/summary.json``): model, steps, seconds, img/s (synthetic images per second
    after the first step), final losses, paths.
    """
    unknown = sorted(set(options) - set(RefineArgs.__dataclass_fields__))
    if unknown:
        raise RefineError(f"unknown refiner option(s): {', '.join(unknown)}")
    args = RefineArgs(model=model, steps=steps, image_size=image_size, batch=batch, **options).resolved()
    src_x = ArraySource(synthetic) if isinstance(synthetic, np.ndarray) else FolderSource(synthetic)
    src_y = ArraySource(real) if isinstance(real, np.ndarray) else FolderSource(real)
    os.makedirs(out, exist_ok=True)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    nets = _Nets(args, device)
    ckpt_path = os.path.join(out, CHECKPOINT_FILE)
    start = _resume(ckpt_path, nets, args, rng)
    pools = (ImagePool(50), ImagePool(50))
    metrics_path = os.path.join(out, "metrics.jsonl")
    if start == 0 and os.path.exists(metrics_path):
        os.remove(metrics_path)

    losses: dict[str, float] = {}
    t0 = time.perf_counter()
    t_warm, warm_steps = t0, 0  # img/s leaves out the first step (lazy imports and allocations)
    for step in range(start, args.steps):
        x = torch.from_numpy(random_crops(src_x, args.batch, args.image_size, rng)).to(device)
        y = torch.from_numpy(random_crops(src_y, args.batch, args.image_size, rng)).to(device)
        losses = _step_cyclegan(nets, x, y, pools) if args.model == "cyclegan" else _step_cut(nets, x, y)
        if not all(math.isfinite(v) for v in losses.values()):
            raise RefineError(f"step {step + 1}: a loss is not finite {losses}; lower --lr")
        done = step + 1
        if step == start:
            t_warm, warm_steps = time.perf_counter(), 1
        if done % args.log_every == 0 or done == args.steps:
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": done, **losses}) + "\n")
            if progress is not None:
                progress(Step("refine", done, args.steps, values=losses))
        if done % args.save_every == 0 or done == args.steps:
            ckpt = _refiner_dict(nets, args, done)
            ckpt["train_state"] = nets.state()
            ckpt["rng_state"] = json.dumps(rng.bit_generator.state)
            save_refiner_file(ckpt, ckpt_path)
    t_end = time.perf_counter()
    seconds = t_end - t0
    timed_steps, timed_seconds = args.steps - start - warm_steps, t_end - t_warm

    refiner_path = os.path.join(out, REFINER_FILE)
    save_refiner_file(_refiner_dict(nets, args, args.steps), refiner_path)
    trained = args.steps - start
    summary = {
        "model": args.model,
        "steps": args.steps,
        "steps_this_run": trained,
        "resumed_from": start,
        "seconds": round(seconds, 3),
        "img_per_s": round(timed_steps * args.batch / timed_seconds, 2) if timed_steps > 0 else None,
        "device": device,
        "n_synthetic": len(src_x),
        "n_real": len(src_y),
        "final_losses": losses,
        "refiner": refiner_path,
        "args": asdict(args),
    }
    write_json(os.path.join(out, "summary.json"), summary, indent=2)
    return summary
