"""swift_middleware: a Barbican-backed keymaster for the Swift proxy pipeline."""
