"""Offline emulator of the Microsoft identity platform and Microsoft Graph, for tests, demos and benchmarks."""

__all__ = ["__version__"]

__version__ = "0.1.0"
