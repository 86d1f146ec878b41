"""Sim-to-real refinement (after the refinement talk, see ``docs/references.md``): unpaired render→real
translation that keeps the labels valid.

Public API:

- :func:`train_refiner` — train CUT, FastCUT or CycleGAN with an edge-consistency constraint;
- :func:`apply_refiner` — write a refined copy of a dataset (same annotations and masks) and measure how well
  edges and mask boundaries survive;
- :func:`refine_arrays` — the same on in-memory arrays, for benchmarks such as the digits protocol;
- :func:`load_generator`, :func:`refine_image` — use a trained refiner directly;
- :class:`RefineError` — every bad input or model file.

Modules import one way: ``apply`` → ``train`` → ``checkpoint`` (the file format) → ``networks``, ``data``;
none of them imports this package.
"""

from trainer.refine.apply import apply_refiner, refine_arrays, refine_image
from trainer.refine.checkpoint import load_generator
from trainer.refine.data import RefineError
from trainer.refine.train import MODELS, train_refiner

__all__ = [
    "MODELS",
    "RefineError",
    "apply_refiner",
    "load_generator",
    "refine_arrays",
    "refine_image",
    "train_refiner",
]
