"""``small_cnn``: a tiny classifier whose output for an image does not depend on the rest of the batch.

Why it exists: every torchvision classifier has BatchNorm (statistics over the batch a process sees) or Dropout
(random masks drawn from each process's generator), so a DDP run with 2 processes can never follow the
1-process trajectory exactly: each rank normalizes over half the batch. This model has neither, so with the
same global batch a run on N processes computes the same gradients as one process, up to floating-point
summation order. That makes it the reference for the scale-out tests (``tests/scale/test_ddp.py``), and it is a
sensible quick model for tiny inputs such as 8x8 digits. It has no pretrained weights.
"""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    """Three 3x3 conv + ReLU stages (the first two followed by 2x2 max-pooling), global average pooling and a
    linear head ``fc`` (the attribute ``trainer.models.build.classifier_head`` looks for)."""

    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))
