"""One package per signal: `<signal>/facts.py` (pure values the gates read, carried by
the snapshot as `app.core.models.Signals`), `<signal>/view.py` (its Redis view),
`<signal>/client.py` (its fallback reader), and `views.py`, which gathers them per snapshot.
"""
