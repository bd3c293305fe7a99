"""Freeze windows: the facts the allow gate reads and the calendar that computes them."""
