"""One package per signal (alerts, github, incidents, urls, freezes), each the same shape.

`<signal>/facts.py`: the pure values the gates read, carried by the snapshot as
`app.core.models.Signals`. `<signal>/view.py`: its Redis view, the only modules here
that import `redis` (a large view keeps its parts beside it: `*_view.py` when they touch
Redis, pure ones such as `stored.py`, `problems.py`, `script.py` when they do not).
`<signal>/client.py`: its HTTP fallback reader, the only modules here that import `httpx`.
`views.py` gathers every view per snapshot; `poller.py` polls the fallback feeds.
"""
