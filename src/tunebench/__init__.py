"""tunebench: which way of fine-tuning is best for my text-classification task?"""

__version__ = "0.1.0"
