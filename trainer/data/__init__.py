"""Datasets in torchvision's (image, target) shape, the mixing sampler, transforms and dataset export."""
