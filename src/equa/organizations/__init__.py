"""Equa organizations, their team members and roles."""
