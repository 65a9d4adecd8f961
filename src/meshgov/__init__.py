"""meshgov: federated, computational governance for a data mesh."""

from meshgov.errors import Location, MeshgovError

__all__ = ["Location", "MeshgovError", "__version__"]
__version__ = "0.1.0"
