"""Plain PyTorch training and prediction for pan dulce photos; no web, queue or database code."""

__version__ = "0.1.0"
