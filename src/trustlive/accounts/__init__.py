"""Accounts: users, roles, sign-in sessions and API tokens."""
