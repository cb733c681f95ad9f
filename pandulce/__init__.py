"""pan-dulce: a distributed batch classifier for bakery photos."""

__version__ = "0.1.0"
