"""The incident signal: its facts, its Redis view, and the status-page feed reader."""
