"""Geometric partitioning (recursive coordinate bisection) and renumbering.

Every rank computes the same partition from the same coordinates (deterministic, no
communication); nodes are then renumbered so that rank ``r`` owns the contiguous block
``offsets[r]:offsets[r+1]`` of every distributed vector and matrix row range.
"""

from __future__ import annotations

import numpy as np


def rcb_parts(points: np.ndarray, n_parts: int) -> np.ndarray:
    """Part id (0..n_parts-1) of each point by recursive coordinate bisection.

    Each cut is normal to the longest extent of the current point set and splits it in
    proportion to the number of parts on either side, so part sizes differ by at most one
    point per level. Points are ordered along a cut by (coordinate, index) to be deterministic.
    """
    parts = np.zeros(len(points), dtype=np.int64)

    def split(idx: np.ndarray, first: int, n: int) -> None:
        if n <= 1 or len(idx) == 0:
            parts[idx] = first
            return
        p = points[idx]
        axis = int(np.argmax(p.max(axis=0) - p.min(axis=0)))
        order = idx[np.lexsort((idx, p[:, axis]))]
        n_left = n // 2
        k = int(round(len(idx) * n_left / n))
        split(order[:k], first, n_left)
        split(order[k:], first + n_left, n - n_left)

    split(np.arange(len(points)), 0, n_parts)
    return parts


def block_numbering(parts: np.ndarray, n_parts: int, order_key: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """New contiguous numbering grouping the nodes of each part.

    Returns ``new_index`` (N,) (old -> new) and ``offsets`` (n_parts + 1,). Within a part the
    nodes keep their relative order (or follow ``order_key``), which preserves the locality of
    the input numbering.
    """
    key = np.arange(len(parts)) if order_key is None else order_key
    order = np.lexsort((key, parts))                  # new -> old
    new_index = np.empty(len(parts), dtype=np.int64)
    new_index[order] = np.arange(len(parts))
    counts = np.bincount(parts, minlength=n_parts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return new_index, offsets
