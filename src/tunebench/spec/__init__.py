"""tunebench.spec.schema: see docs/ARCHITECTURE.md."""
