"""Hostile input (issue 4): what arbitrary, forged, oversized or flooding senders get.

Every test here is marked `reliability` and records its figures (`tests/figures.py`).
"""
