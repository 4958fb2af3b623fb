"""Equa accounts: users, password login, browser sessions, API tokens."""
