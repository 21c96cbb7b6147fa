"""Scores of a reconstruction against a ground truth (synthetic stacks, benchmarks, tests)."""

from __future__ import annotations

import numpy as np


def match_grains(truth, labels, min_voxels: int = 500, min_iou: float = 0.8,
                 mask: np.ndarray | None = None) -> dict:
    """One-to-one matching of ground-truth grains to reconstructed grains by IoU.

    Parameters
    ----------
    truth, labels : (z, y, x) integer label volumes (or h5py datasets; read slice by slice),
        0 = none.
    min_voxels : only truth grains with at least this many voxels (inside ``mask``) count.
    min_iou : a truth grain is matched when some reconstructed grain has IoU >= min_iou
        with it (IoU > 0.5 is already one-to-one).
    mask : (y, x) bool, the pixels both volumes are compared on (e.g. the usable region).

    Returns
    -------
    dict with ``n_truth`` (large truth grains), ``n_truth_all`` (every truth grain present),
    ``n_matched``, ``matched_fraction``,
    ``n_reconstructed``, ``n_spurious`` (reconstructed grains that overlap no truth grain by
    more than half of their own volume), ``spurious_fraction``, ``iou`` (array per large
    truth grain: its best IoU).
    """
    pairs: dict[tuple[int, int], int] = {}
    at = {}
    al = {}
    for z in range(truth.shape[0]):
        t = np.asarray(truth[z]).astype(np.int64)
        l = np.asarray(labels[z]).astype(np.int64)
        if mask is not None:
            t, l = t[mask], l[mask]
        else:
            t, l = t.ravel(), l.ravel()
        for arr, acc in ((t, at), (l, al)):
            ids, c = np.unique(arr, return_counts=True)
            for i, n in zip(ids.tolist(), c.tolist()):
                acc[i] = acc.get(i, 0) + n
        both = (t > 0) & (l > 0)
        m = int(l.max()) + 1
        u, c = np.unique(t[both] * m + l[both], return_counts=True)
        for key, n in zip(u.tolist(), c.tolist()):
            k = (key // m, key % m)
            pairs[k] = pairs.get(k, 0) + n
    at.pop(0, None)
    al.pop(0, None)
    best_iou = {g: 0.0 for g, v in at.items() if v >= min_voxels}
    best_frac = {g: 0.0 for g in al}
    for (g, r), n in pairs.items():
        if g in best_iou:
            best_iou[g] = max(best_iou[g], n / (at[g] + al[r] - n))
        best_frac[r] = max(best_frac[r], n / al[r])
    iou = np.array(list(best_iou.values()))
    n_truth = len(iou)
    n_matched = int((iou >= min_iou).sum())
    n_spur = int(sum(1 for v in best_frac.values() if v <= 0.5))
    return {"n_truth": n_truth, "n_truth_all": len(at), "n_matched": n_matched,
            "matched_fraction": n_matched / n_truth if n_truth else float("nan"),
            "n_reconstructed": len(al), "n_spurious": n_spur,
            "spurious_fraction": n_spur / len(al) if al else float("nan"), "iou": iou}


def shift_rms_error(estimated: np.ndarray, truth: np.ndarray) -> float:
    """RMS over slices of the Euclidean error of (z, 2) shift arrays (px)."""
    d = np.asarray(estimated, float) - np.asarray(truth, float)
    return float(np.sqrt((d ** 2).sum(axis=1).mean()))
