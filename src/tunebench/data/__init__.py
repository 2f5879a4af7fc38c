"""tunebench.data.loading: see docs/ARCHITECTURE.md."""
