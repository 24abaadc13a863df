"""Audit rules, one module per area. The registry (``config_checks.registry``) lists them all."""
