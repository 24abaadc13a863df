"""config_checks: audit OpenStack config trees for key-manager misconfiguration; retire fixed_key."""
