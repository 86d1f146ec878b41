"""Real-data benchmark protocols (digits: seed 001 design + seed 000 bias fix)."""
