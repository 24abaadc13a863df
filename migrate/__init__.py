"""migrate: move Cinder volumes, snapshots and backups off the ConfKeyManager fixed key to Barbican."""
