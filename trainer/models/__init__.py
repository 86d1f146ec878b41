"""Model builders: torchvision models by name with a local weights path, and the small test CNN."""
