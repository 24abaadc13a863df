"""sign: create signing certificates, store them in Barbican, and sign Glance images (RSA-PSS, ECC)."""
