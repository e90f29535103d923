"""kiwoom-cache's shared package: the Redis contract both the publisher and the API import.

The contract's public names are :mod:`kiwoom_cache.contract`'s ``__all__``; the package root holds only the version.
"""

__version__ = "0.1.0"

__all__ = ("__version__",)
