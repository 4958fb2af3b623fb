"""The Microsoft 365 integration: Graph access, group linking and membership sync."""
