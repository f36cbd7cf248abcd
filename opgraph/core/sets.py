"""Disjoint sets (union-find): which ops fuse into one kernel, which share activations."""

from __future__ import annotations

from collections.abc import Iterable


class DisjointSets:
    """Disjoint sets of names, as networkx's UnionFind without its generality: every fusion pass and every memory
    peak of every analysis runs one, so a first analysis pays for each lookup."""

    def __init__(self, items: Iterable[str]):
        self.parent = {x: x for x in items}

    def __getitem__(self, x: str) -> str:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    def union(self, *items: str) -> None:
        roots = [self[x] for x in items]
        for r in roots[1:]:
            self.parent[r] = roots[0]
            roots[0] = self[roots[0]]

    def to_sets(self):
        sets: dict[str, set] = {}
        for x in self.parent:
            sets.setdefault(self[x], set()).add(x)
        return sets.values()
