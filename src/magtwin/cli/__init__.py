"""Command-line interface: one sub-command per pipeline stage."""
