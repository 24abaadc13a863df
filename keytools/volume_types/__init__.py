"""Encrypted (LUKS) Cinder volume types: validated specs, idempotent create, checks.

``spec`` holds the rules (providers, dm-crypt ciphers, key sizes), ``manage`` creates and updates
types through the Cinder API, ``check`` reports on what a cloud has, ``cli`` wires them to click.
"""
