"""The Platform API: its client and Cascade's webhook subscriptions."""
