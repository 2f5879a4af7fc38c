"""tunebench.results: see docs/ARCHITECTURE.md."""
