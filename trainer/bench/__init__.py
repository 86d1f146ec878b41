"""Real-data benchmark protocols: digits (the refinement talk's design plus the bias-fix study's loop) and the
variability study."""
