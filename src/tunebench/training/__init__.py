"""tunebench.training: see docs/ARCHITECTURE.md."""
