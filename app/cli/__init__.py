"""The `cascade` command."""
