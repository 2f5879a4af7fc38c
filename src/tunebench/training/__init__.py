"""tunebench.training:
the engine and what it needs:
batching, model loading, frozen-prefix cache, resume, distributed, checkpoints, metrics, resources.
"""
