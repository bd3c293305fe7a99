"""incident: no open incident, and no troubled component, touching the service's systems.

An incident naming no component touches every service; a service listing no
`incident_systems` watches every component. Unknown while the status page cannot be read.
"""

from collections.abc import Collection

from app.core.models import GateResult, GateState, Pair, Snapshot
from app.signals.incidents.facts import Component, Incident, touches

NAME = "incident"


def check(snapshot: Snapshot, pair: Pair) -> GateResult | None:
    view = snapshot.signals.incidents
    if view is None:
        return None
    systems = snapshot.service.incident_systems
    blocking = [_incident(i) for i in view.incidents if touches(systems, i.components)]
    blocking += [_component(c) for c in view.components if touches(systems, (c.name,))]
    if view.problem is not None:
        meanwhile = f"; meanwhile {'; '.join(blocking)}" if blocking else ""
        return GateResult(
            NAME, GateState.UNKNOWN, view.problem + meanwhile, recheck_at=view.recheck_at
        )
    if blocking:
        return GateResult(NAME, GateState.CLOSED, "; ".join(blocking))
    return GateResult(
        NAME, GateState.OPEN, f"no open incident on the status page ({_watching(systems)})"
    )


def _incident(incident: Incident) -> str:
    where = ", ".join(incident.components) or "every system"
    link = f": {incident.url}" if incident.url else ""
    return f"{incident.kind} '{incident.name}' ({incident.status}) on {where}{link}"


def _component(component: Component) -> str:
    return f"{component.name} is {component.status.replace('_', ' ')} on the status page"


def _watching(systems: Collection[str]) -> str:
    return f"watching {', '.join(systems)}" if systems else "watching every system"
