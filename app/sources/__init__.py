"""Readers and writers of the other systems Cascade talks to besides Heroku: one module each.

`github.py` is the GitHub REST client (commit statuses now; the github gate's fallback reads
later). Like `app.heroku`, these modules are the only places that speak HTTP to them.
"""
