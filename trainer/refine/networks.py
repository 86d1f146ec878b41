"""The refiner's networks: a ResNet-style generator, a PatchGAN discriminator and the PatchNCE projection heads.

The generator is residual around its input: its last convolution (and its noise scale) start at zero, so an
untrained refiner is the identity and every edge of the render is in place on step 0. Training then moves colours
and textures only as far as the losses ask, which is what keeps the labels valid (the refinement talk saw its GAN
lose labels).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_EPS = 1e-3


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Encoder (stem + ``n_down`` stride-2 convs) → ``n_blocks`` residual blocks → decoder, in [-1, 1].

    ``encode(x, layers)`` returns the intermediate activations PatchNCE compares; ``forward`` the image. Inputs of
    any size work: they are padded to a multiple of ``2**n_down`` and cropped back.
    """

    def __init__(self, channels: int = 3, ngf: int = 16, n_down: int = 2, n_blocks: int = 4):
        super().__init__()
        self.n_down = n_down
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
        width = ngf
        for _ in range(n_down):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResnetBlock(width) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        out = nn.Conv2d(width, channels, 7)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        layers += [nn.ReflectionPad2d(3), out]
        self.model = nn.Sequential(*layers)
        # Sensor noise cannot come out of a deterministic map of a clean render, and a discriminator spots its
        # absence at once. A learned per-channel scale (zero at start) of Gaussian noise lets the refiner add it.
        self.noise_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        # Activations PatchNCE reads, as counts of applied modules: the stem (4 modules), each downsampling stage
        # (3 modules each), the first and the middle residual block. Unlike CUT we leave out the raw input pixels:
        # matching raw colours would fight the very colour change we want, while these layers sit behind
        # instance normalization, which cancels a global cast, so they compare content.
        stem = 4
        last_block = stem + 3 * n_down + n_blocks
        wanted = [stem, *(stem + 3 * (i + 1) for i in range(n_down))]
        if n_blocks:
            wanted += [stem + 3 * n_down + 1, stem + 3 * n_down + max(1, n_blocks // 2)]
        self.nce_layers = sorted(set(i for i in wanted if i <= last_block))

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        m = 2**self.n_down
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Refine ``x`` (B x C x H x W in [-1, 1]); ``generator`` makes the injected noise reproducible."""
        padded, h, w = self._pad(x)
        residual = self.model(padded)[..., :h, :w]
        noise = torch.randn(x.shape, generator=generator, device="cpu" if generator is not None else x.device)
        residual = residual + self.noise_scale * noise.to(x.device)
        # tanh(atanh(x) + r): identity when r = 0, always inside (-1, 1).
        return torch.tanh(torch.atanh(x.clamp(-1 + _EPS, 1 - _EPS)) + residual)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Activations after each module index in ``layers`` (0 = the input itself)."""
        padded, _, _ = self._pad(x)
        feats = []
        wanted = set(layers)
        if 0 in wanted:
            feats.append(padded)
        h = padded
        for i, module in enumerate(self.model, start=1):
            h = module(h)
            if i in wanted:
                feats.append(h)
            if i >= max(layers):
                break
        return feats


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per receptive field; ``n_layers`` stride-2 convolutions."""

    def __init__(self, channels: int = 3, ndf: int = 16, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for i in range(1, n_layers):
            nxt = ndf * min(2**i, 8)
            layers += [nn.Conv2d(width, nxt, 4, stride=2, padding=1), _norm(nxt), nn.LeakyReLU(0.2, True)]
            width = nxt
        nxt = ndf * min(2**n_layers, 8)
        layers += [nn.Conv2d(width, nxt, 3, padding=1), _norm(nxt), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(nxt, 1, 3, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchSampleMLP(nn.Module):
    """One small MLP per NCE layer that projects sampled patch features onto the unit sphere.

    The MLPs are created for the channel counts given up front (not lazily) so the state dict is complete and a
    saved refiner reloads without a forward pass.
    """

    def __init__(self, in_channels: list[int], dim: int = 128):
        super().__init__()
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, dim), nn.ReLU(True), nn.Linear(dim, dim)) for c in in_channels
        )

    def forward(
        self, feats: list[torch.Tensor], num_patches: int, patch_ids: list[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        out, ids_out = [], []
        for k, (feat, mlp) in enumerate(zip(feats, self.mlps, strict=True)):
            b, c, h, w = feat.shape
            flat = feat.flatten(2).permute(0, 2, 1)  # B, HW, C
            if patch_ids is not None:
                ids = patch_ids[k]
            else:
                ids = torch.randperm(h * w, device=feat.device)[: min(num_patches, h * w)]
            sample = flat[:, ids, :].reshape(-1, c)
            out.append(F.normalize(mlp(sample), dim=1).reshape(b, len(ids), -1))
            ids_out.append(ids)
        return out, ids_out


def nce_channels(generator: ResnetGenerator, channels: int, probe_size: int = 16) -> list[int]:
    """Channel count of each NCE layer, found with one tiny forward pass."""
    with torch.no_grad():
        x = torch.zeros(1, channels, probe_size, probe_size)
        return [f.shape[1] for f in generator.encode(x, generator.nce_layers)]
