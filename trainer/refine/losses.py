"""Training losses of the refiner: least-squares GAN, PatchNCE (CUT/FastCUT), and the geometry constraint.

The geometry constraint compares soft edge maps of the input and the output (see ``edge_strength``), so a colour
cast, a contrast change or sensor noise costs almost nothing while a moved, added or removed edge does.
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


def _blur(images: torch.Tensor) -> torch.Tensor:
    """5x5 binomial blur per channel: sensor-noise-sized detail hardly reaches the gradient maps."""
    c = images.shape[1]
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=images.dtype, device=images.device) / 16.0
    kernel = (k1[:, None] * k1[None, :])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="replicate"), kernel, groups=c)


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude of blurred B x C x H x W images (B x C x H x W)."""
    c = images.shape[1]
    kx = _SOBEL_X.to(images)[None, None].repeat(c, 1, 1, 1)
    ky = kx.transpose(2, 3)
    padded = F.pad(_blur(images), (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx, groups=c)
    gy = F.conv2d(padded, ky, groups=c)
    return torch.sqrt(gx * gx + gy * gy + 1e-6)


def edge_strength(images: torch.Tensor) -> torch.Tensor:
    """Soft edge maps in [0, 1): each channel's gradient divided by its own mean (so a gain or offset per colour
    channel changes nothing), then saturated (g^2 / (g^2 + 1)): weak texture and noise stay near 0, every real
    edge near 1, whatever its contrast."""
    g = gradient_magnitude(images)
    g = g / g.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return g * g / (g * g + 1.0)


def edge_consistency_loss(source: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """L1 between the soft edge maps of input and output: a colour cast, a contrast change or a little noise
    costs almost nothing; a moved, added or removed edge costs the most."""
    return (edge_strength(source) - edge_strength(refined)).abs().mean()


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
