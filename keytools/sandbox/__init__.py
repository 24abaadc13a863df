"""``keytools sandbox``: a real local OpenStack control plane (Keystone, Barbican, and more) on loopback."""
