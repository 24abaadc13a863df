"""verify: verify Glance image signatures exactly as Glance and Nova (cursive) do."""
