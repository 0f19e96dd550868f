"""Training: the one tape-based loop and the experiments built on it."""
