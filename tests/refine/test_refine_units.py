"""Refiner pieces with known answers, on drawn images (fast, no Blender): geometry metrics, the identity start of
the generator, model-file errors, resume, and the array entry point the digits benchmark calls."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from trainer.refine import RefineError, apply_refiner, load_generator, refine_arrays, train_refiner
from trainer.refine.geometry import compare, edge_iou, mask_boundaries
from trainer.refine.networks import ResnetGenerator

torch.set_num_threads(1)


def _scene(shift: int = 0, size=(48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a red rectangle and a blue disc, and its instance map."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    image = np.full((h, w, 3), 110, np.uint8)
    inst = np.zeros((h, w), np.uint16)
    rect = (yy >= 10) & (yy < 30) & (xx >= 8 + shift) & (xx < 28 + shift)
    disc = (yy - 26) ** 2 + (xx - 46 - shift) ** 2 < 81
    image[rect] = (200, 40, 40)
    image[disc] = (40, 60, 200)
    inst[rect] = 1
    inst[disc] = 2
    return image, inst


def test_edge_iou_known_answers():
    image, inst = _scene()
    assert edge_iou(image, image) == pytest.approx(1.0)
    cast = np.clip(image * np.array([1.25, 0.85, 0.7]) + 15, 0, 255).astype(np.uint8)
    assert edge_iou(image, cast) > 0.9  # colour changes, edges stay
    moved, _ = _scene(shift=6)
    assert edge_iou(image, moved) < 0.5  # geometry moved by 6 px
    geo = compare(image, cast, inst)
    assert geo["boundary_recall_in"] > 0.9 and geo["boundary_agreement"] > 0.9
    assert compare(image, moved, inst)["boundary_agreement"] < 0.6


def test_mask_boundaries_follow_instance_changes():
    inst = np.zeros((6, 6), np.uint16)
    inst[2:4, 2:4] = 7
    b = mask_boundaries(inst)
    assert b.sum() > 0 and not b[0, 0] and b[2, 2]


def test_untrained_generator_is_the_identity():
    net = ResnetGenerator(ngf=8, n_down=2, n_blocks=2)
    x = torch.rand(2, 3, 37, 50) * 1.6 - 0.8
    assert torch.allclose(net(x), x, atol=2e-3)


def _tiny_refiner(tmp_path, steps: int = 2, **kw) -> str:
    rng = np.random.default_rng(0)
    syn = rng.integers(0, 255, (6, 24, 24, 3)).astype(np.uint8)
    real = rng.integers(0, 255, (6, 24, 24, 3)).astype(np.uint8)
    out = str(tmp_path / "refiner")
    train_refiner(
        syn, real, out, model="fastcut", steps=steps, image_size=16, batch=2, ngf=4, n_blocks=1, num_patches=16, **kw
    )
    return out


def _dataset(root, n: int = 3) -> str:
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "instance"))
    images = []
    for i in range(n):
        image, inst = _scene(shift=i)
        Image.fromarray(image).save(os.path.join(root, "images", f"{i:06d}.png"))
        Image.fromarray(inst).save(os.path.join(root, "instance", f"{i:06d}.png"))
        images.append({"id": i + 1, "file_name": f"{i:06d}.png", "width": 64, "height": 48})
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump({"images": images, "annotations": [], "categories": [{"id": 0, "name": "thing"}]}, f)
    return str(root)


def test_model_file_errors_are_clear(tmp_path):
    run = _tiny_refiner(tmp_path)
    data = _dataset(tmp_path / "data")
    # Saved with weights_only-safe contents: plain torch.load with weights_only=True reads it.
    ckpt = torch.load(os.path.join(run, "refiner.pth"), weights_only=True)
    assert ckpt["task"] == "refine" and ckpt["generator"]["n_blocks"] == 1

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a torch file")
    with pytest.raises(RefineError, match="not a readable refiner checkpoint"):
        load_generator(str(corrupt))

    foreign = tmp_path / "regress.pth"
    torch.save({"task": "regress", "model": {}}, foreign)
    with pytest.raises(RefineError, match="'regress' checkpoint, not a refiner"):
        load_generator(str(foreign))

    mismatched = tmp_path / "mismatched.pth"
    torch.save(dict(ckpt, generator=dict(ckpt["generator"], n_blocks=3)), mismatched)
    with pytest.raises(RefineError, match="do not match"):
        load_generator(str(mismatched))

    with pytest.raises(RefineError, match="no refiner"):
        load_generator(str(tmp_path / "missing"))

    from trainer.cli import cli

    result = CliRunner().invoke(
        cli, ["refine", "apply", "--model", str(corrupt), data, str(tmp_path / "o"), "-q", "--device", "cpu"]
    )
    assert result.exit_code == 2 and "not a readable refiner checkpoint" in result.output


def test_apply_copies_labels_and_refuses_to_overwrite(tmp_path):
    run = _tiny_refiner(tmp_path)
    data = _dataset(tmp_path / "data")
    out = str(tmp_path / "refined")
    report = apply_refiner(run, data, out)
    assert report["images"] == 3 and report["annotations_identical"]
    for i in range(3):
        a = (tmp_path / "data" / "instance" / f"{i:06d}.png").read_bytes()
        assert (tmp_path / "refined" / "instance" / f"{i:06d}.png").read_bytes() == a
        assert os.path.exists(os.path.join(out, "images", f"{i:06d}.png"))
    assert report["edge_iou_min"] > 0.9  # two steps from the identity: the geometry is untouched
    with pytest.raises(RefineError, match="not empty"):
        apply_refiner(run, data, out)
    assert apply_refiner(run, data, out, overwrite=True)["images"] == 3


def test_training_resumes_from_its_checkpoint(tmp_path):
    run = _tiny_refiner(tmp_path, steps=4, save_every=2)
    rng = np.random.default_rng(0)
    syn = rng.integers(0, 255, (6, 24, 24, 3)).astype(np.uint8)
    real = rng.integers(0, 255, (6, 24, 24, 3)).astype(np.uint8)
    s = train_refiner(
        syn,
        real,
        run,
        model="fastcut",
        steps=6,
        image_size=16,
        batch=2,
        ngf=4,
        n_blocks=1,
        num_patches=16,
        save_every=2,
    )
    assert s["resumed_from"] == 4 and s["steps_this_run"] == 2
    with open(os.path.join(run, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # nothing logged twice
    with pytest.raises(RefineError, match="different settings"):
        train_refiner(syn, real, run, model="fastcut", steps=8, image_size=16, batch=2, ngf=8, n_blocks=1)


def test_refine_arrays_keeps_shape_and_dtype_for_digits(tmp_path):
    from sklearn.datasets import load_digits

    real = load_digits().images[:40]  # 8x8 floats, 0..16
    synthetic = np.clip(real[40:0:-1][:40] * 0.6 + 3.0, 0, 16)  # a planted "font" look: low contrast, lifted
    refined, summary = refine_arrays(
        synthetic, real, str(tmp_path / "digits"), steps=3, batch=4, ngf=4, n_blocks=1, num_patches=8
    )
    assert refined.shape == synthetic.shape and refined.dtype == synthetic.dtype
    assert summary["steps"] == 3 and 0 <= refined.min() and refined.max() <= 16.0 + 1e-9


@pytest.mark.parametrize("model", ["cut", "cyclegan"])
def test_cut_and_cyclegan_train_and_apply(tmp_path, model):
    rng = np.random.default_rng(1)
    syn = rng.integers(0, 255, (4, 24, 24, 3)).astype(np.uint8)
    real = rng.integers(0, 255, (4, 24, 24, 3)).astype(np.uint8)
    run = str(tmp_path / model)
    summary = train_refiner(
        syn, real, run, model=model, steps=3, image_size=16, batch=2, ngf=4, n_blocks=1, num_patches=16
    )
    assert summary["model"] == model and set(summary["final_losses"]) >= {"D", "G_gan", "edge"}
    report = apply_refiner(run, _dataset(tmp_path / "data", n=2), str(tmp_path / "out"))
    assert report["refiner_model"] == model and report["annotations_identical"]
    again = apply_refiner(run, str(tmp_path / "data"), str(tmp_path / "out2"))
    for i in range(2):  # the injected noise is seeded per image: refining twice gives the same bytes
        a = (tmp_path / "out" / "images" / f"{i:06d}.png").read_bytes()
        assert (tmp_path / "out2" / "images" / f"{i:06d}.png").read_bytes() == a
    assert again["edge_iou_mean"] == report["edge_iou_mean"]


def test_digits_refined_source_plugs_into_the_benchmark(tmp_path):
    from trainer.bench import digits as bench
    from trainer.bench import digits_data as dd
    from trainer.bench.digits_refined import add_refined_curves, build_refined

    ctx = bench.make_context(str(tmp_path / "digits"), "toy", seed=0)
    # A stand-in synthetic folder in the real form (no rendering): thick, low-contrast "font" digits.
    idx = ctx.split.pool[:30]
    fonts = np.clip(ctx.real_images[idx] * 0.5 + 4.0, 0, 16)
    syn = str(tmp_path / "digits" / "synthetic")
    dd.write_imagefolder(syn, fonts, ctx.real_labels[idx], [f"syn{i:04d}" for i in range(len(idx))])
    ctx.synthetic_dirs["synthetic"] = syn
    out = build_refined(ctx)
    images, labels, names = dd.read_imagefolder(out)
    assert images.shape == fonts.shape and (labels == np.sort(ctx.real_labels[idx], kind="stable")).all()
    assert images.min() >= 0 and images.max() <= 16

    saved_sets, saved_builders = list(bench.TRAINING_SETS), dict(bench.SYNTHETIC_BUILDERS)
    try:
        add_refined_curves(bench)
        add_refined_curves(bench)  # idempotent
        keys = [ts.key for ts in bench.TRAINING_SETS]
        assert keys.count("real+refined") == 1 and keys.count("refined") == 1
        assert bench.SYNTHETIC_BUILDERS["refined"] is build_refined
    finally:
        bench.TRAINING_SETS[:] = saved_sets
        bench.SYNTHETIC_BUILDERS.clear()
        bench.SYNTHETIC_BUILDERS.update(saved_builders)
