"""The github signal: its facts, its Redis view, and the GitHub REST client."""
