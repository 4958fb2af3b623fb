"""Equa's Microsoft 365 integration: organizations linked to Microsoft 365 groups through Microsoft Graph."""

__version__ = "0.1.0"
