"""Barbican backup, restore and the restore drill (simple_crypto: KEK + database)."""
