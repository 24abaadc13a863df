"""keytools: encryption integration for OpenStack clouds on Barbican (shared core and CLI)."""

__version__ = "0.1.0"
