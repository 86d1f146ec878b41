"""`python -m trainer ...` (and `torchrun -m trainer ...`) runs the `blendset` CLI."""

from trainer.cli import main

main()
