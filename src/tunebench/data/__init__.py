"""tunebench.data:
datasets: local files, the offline built-in catalog (PyPI artifacts), the hub; cleaning, seeded
splits, the data profile.
"""
