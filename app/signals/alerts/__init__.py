"""The alerts signal: its facts, its Redis view, and Librato's status API as fallback."""
