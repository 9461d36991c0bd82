"""Which on-duty guard goes to verify an alarm: the one whose last scan is nearest. Pure.

Distance between two checkpoints: the shortest path over the site's given distances
(metres, each pair both ways); where no path joins them, the zone graph's estimate —
(hops between their zones + 0.5) × zone_step, so two points of one zone count half a step
and the checkpoint itself counts 0. A guard whose position is unknown (no scan yet) or
unreachable comes after every guard with a distance. Ties: the most recent scan, then id.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Basis = Literal["distances", "zones", "unknown"]


@dataclass(frozen=True)
class Guard:
    """An on-duty guard: their last scan's checkpoint and time, and their run under way."""

    id: str
    last_checkpoint: str | None = None
    last_scan_at: datetime | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class SiteMap:
    """How far checkpoints are apart: given distances, and zones with their adjacency."""

    distances: Iterable[tuple[str, str, float]] = ()
    zone_of: Mapping[str, str | None] = field(default_factory=dict)
    adjacent_zones: Iterable[tuple[str, str]] = ()
    zone_step: float = 100.0


@dataclass(frozen=True)
class Choice:
    """The guard sent, how far their last scan was from the checkpoint, and on what basis."""

    guard: Guard
    distance: float | None
    basis: Basis


def _shortest(edges: Iterable[tuple[str, str, float]], source: str) -> dict[str, float]:
    """Dijkstra over the given distances from `source`."""
    graph: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for a, b, d in edges:
        graph[a].append((b, d))
        graph[b].append((a, d))
    best = {source: 0.0}
    queue = [(0.0, source)]
    while queue:
        d, node = heapq.heappop(queue)
        if d > best.get(node, float("inf")):
            continue
        for nxt, step in graph[node]:
            if d + step < best.get(nxt, float("inf")):
                best[nxt] = d + step
                heapq.heappush(queue, (d + step, nxt))
    return best


def _hops(pairs: Iterable[tuple[str, str]], source: str) -> dict[str, int]:
    """Breadth-first hop counts over the zone adjacency from `source`."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in pairs:
        graph[a].add(b)
        graph[b].add(a)
    hops = {source: 0}
    queue = deque([source])
    while queue:
        zone = queue.popleft()
        for nxt in graph[zone]:
            if nxt not in hops:
                hops[nxt] = hops[zone] + 1
                queue.append(nxt)
    return hops


class Distances:
    """Distances from one target checkpoint to any other (computed once per target)."""

    def __init__(self, site: SiteMap, target: str) -> None:
        self.site = site
        self.target = target
        self.metres = _shortest(site.distances, target)
        zone = site.zone_of.get(target)
        self.hops = _hops(site.adjacent_zones, zone) if zone else {}

    def to(self, checkpoint: str) -> tuple[float, Basis] | None:
        """The distance from the target to `checkpoint` and its basis; None: unknown."""
        if checkpoint == self.target:
            return 0.0, "distances"
        if checkpoint in self.metres:
            return self.metres[checkpoint], "distances"
        zone = self.site.zone_of.get(checkpoint)
        if zone is not None and zone in self.hops:
            return (self.hops[zone] + 0.5) * self.site.zone_step, "zones"
        return None


def choose(guards: Iterable[Guard], target: str, site: SiteMap) -> Choice | None:
    """The guard to send to `target`; None when no guard is on duty."""
    far = Distances(site, target)
    ranked: list[tuple[tuple[int, float, float, str], Choice]] = []
    for guard in guards:
        found = far.to(guard.last_checkpoint) if guard.last_checkpoint else None
        seen = -guard.last_scan_at.timestamp() if guard.last_scan_at else float("inf")
        if found is None:
            ranked.append(((1, 0.0, seen, guard.id), Choice(guard, None, "unknown")))
        else:
            ranked.append(((0, found[0], seen, guard.id), Choice(guard, found[0], found[1])))
    if not ranked:
        return None
    return min(ranked, key=lambda pair: pair[0])[1]
