"""Training losses of the refiner: least-squares GAN, PatchNCE (CUT/FastCUT), and the geometry constraint.

The geometry constraint compares colour Sobel gradient maps of the input and the output, each divided by its own mean,
so a global brightness or contrast change costs nothing while a moved, added or removed edge does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (stable at small batch sizes)."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.mse_loss(logits, target)


def patch_nce_loss(queries: list[torch.Tensor], keys: list[torch.Tensor], temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE between patches of the output (queries) and the input (keys) at the same locations.

    Each query's positive is the key at its own location; the negatives are the keys at the other sampled
    locations of the same image. Inputs are lists (one per layer) of B x P x D unit vectors.
    """
    total = queries[0].new_zeros(())
    for q, k in zip(queries, keys, strict=True):
        k = k.detach()
        logits = torch.bmm(q, k.transpose(1, 2)) / temperature  # B, P, P: diagonal holds the positives
        b, p, _ = logits.shape
        target = torch.arange(p, device=q.device).expand(b, p)
        total = total + F.cross_entropy(logits.reshape(b * p, p), target.reshape(-1))
    return total / len(queries)


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Colour Sobel gradient magnitude of B x C x H x W images: per-channel gradients summed in quadrature, so an
    edge between two colours of equal brightness still counts."""
    b, c, h, w = images.shape
    kx = _SOBEL_X.to(images)[None, None].repeat(c, 1, 1, 1)
    ky = kx.transpose(2, 3)
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx, groups=c)
    gy = F.conv2d(padded, ky, groups=c)
    return torch.sqrt((gx * gx + gy * gy).sum(dim=1, keepdim=True) + 1e-6)


def edge_consistency_loss(source: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """L1 between mean-normalized gradient maps of input and output: penalizes moved edges, not colour."""
    gs = gradient_magnitude(source)
    gr = gradient_magnitude(refined)
    gs = gs / gs.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    gr = gr / gr.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return (gs - gr).abs().mean()


class ImagePool:
    """The last few generated images, replayed to the discriminator half the time (CycleGAN's history buffer)."""

    def __init__(self, size: int = 50, generator: torch.Generator | None = None):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = generator

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                i = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)
