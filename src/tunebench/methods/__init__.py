"""tunebench.methods: see docs/ARCHITECTURE.md."""
