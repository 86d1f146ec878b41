"""Training: one epoch, the one run loop and its run specification, checkpoints, DDP, one recipe per task."""
