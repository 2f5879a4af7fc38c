"""tunebench.spec:
the study specification: its parts, the strategy grammar and default rates, the sweep keys; no I/O
beyond reading YAML.
"""
