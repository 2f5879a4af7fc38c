"""tunebench.study.driver: see docs/ARCHITECTURE.md."""
