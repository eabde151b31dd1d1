"""Matching: which source layer feeds which target layer.

`index_match` is TLVFC's (the j-th of n target layers takes the source layer at
the same relative depth); `dp_match` is DPIAT's order-preserving dynamic
programme over shape scores, where one source item may feed a run of target
items and a run of length r is worth its summed score / sqrt(r).
"""

from __future__ import annotations

import math
from functools import lru_cache

from torch import nn

from tlrepro.transfer.standardize import WEIGHTED, Item, leaves

Pair = tuple[nn.Module | None, nn.Module]


def index_match(n_source: int, n_target: int) -> list[int]:
    """Source index of each target layer: clamp(round(j * n_source / n_target), 0, n_source - 1).

    Python's `round` (half to even) as in the release, so that the pairing is the
    documented one; computed in integers to avoid float ties drifting.
    """
    if n_source < 1 or n_target < 1:
        raise ValueError(f"index matching needs layers on both sides ({n_source}, {n_target})")
    return [
        min(max(_round_half_even(j * n_source, n_target), 0), n_source - 1) for j in range(n_target)
    ]


def _round_half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def shape_score(source: nn.Module, target: nn.Module) -> float:
    """Product over weight dims of min(a/b, b/a) for two layers of one DPIAT kind, else 0
    (so 0 for layers without weights)."""
    if not any(isinstance(source, kind) and isinstance(target, kind) for kind in WEIGHTED):
        return 0.0
    pairs = zip(source.weight.shape, target.weight.shape, strict=True)
    return math.prod(min(a / b, b / a) for a, b in pairs)


def dp_match(source: list[Item], target: list[Item]) -> list[Pair]:
    """Every target layer DPIAT transfers into, with the source layer it pairs it with
    (None: left as is). Layers without weights take part in the matching, not in the result."""
    pairs = _Matcher().pairs(source, target)
    return [(s_layer, t_layer) for s_layer, t_layer in pairs if isinstance(t_layer, WEIGHTED)]


class _Matcher:
    """Memoises block-versus-block scores, which the outer programme asks for repeatedly."""

    def __init__(self) -> None:
        self._solve = lru_cache(maxsize=None)(self._solve_uncached)

    def score(self, source: Item, target: Item) -> float:
        if isinstance(source, list) and isinstance(target, list):
            return self._solve(_Key(source), _Key(target))[0]
        if isinstance(source, list) or isinstance(target, list):
            return 0.0
        return shape_score(source, target)

    def _solve_uncached(self, source_key: _Key, target_key: _Key) -> tuple[float, tuple]:
        """Best total and, per target item, the source item index feeding it (or None)."""
        source, target = source_key.items, target_key.items
        m, n = len(source), len(target)
        scores = [[self.score(source[j], target[i]) for j in range(m)] for i in range(n)]
        best = [[0.0] * (m + 1) for _ in range(n + 1)]
        move: list[list[tuple[int, int]]] = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                if best[i - 1][j] > best[i][j - 1]:
                    best[i][j], move[i][j] = best[i - 1][j], (i - 1, j)
                else:
                    best[i][j], move[i][j] = best[i][j - 1], (i, j - 1)
                run = 0.0
                for k in range(i, 0, -1):
                    run += scores[k - 1][j - 1]
                    value = run / math.sqrt(i - k + 1) + best[k - 1][j - 1]
                    if value > best[i][j]:
                        best[i][j], move[i][j] = value, (k - 1, j - 1)
        feeder: list[int | None] = [None] * n
        i, j = n, m
        while i > 0 and j > 0:
            pi, pj = move[i][j]
            if pj == j - 1 and pi < i:
                for t in range(pi, i):
                    if scores[t][j - 1] > 0:
                        feeder[t] = j - 1
            i, j = pi, pj
        return best[n][m], tuple(feeder)

    def pairs(self, source: list[Item], target: list[Item]) -> list[Pair]:
        _, feeder = self._solve(_Key(source), _Key(target))
        result: list[Pair] = []
        for t_item, s_index in zip(target, feeder, strict=True):
            s_item = None if s_index is None else source[s_index]
            if isinstance(t_item, list):
                if isinstance(s_item, list):
                    result += self.pairs(s_item, t_item)
                else:
                    result += [(None, layer) for layer in leaves(t_item)]
            else:
                result.append((s_item, t_item))
        return result


class _Key:
    """Hashable by identity, so that a block's sub-problem is solved once."""

    def __init__(self, items: list[Item]):
        self.items = items

    def __hash__(self) -> int:
        return id(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other.items is self.items
