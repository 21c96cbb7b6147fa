"""Split linked 3D grains along z where two grains were linked end to end (grains stage).

A grain that ends where the next one starts (platelets stacked along the slicing direction
do that all the time) is often linked to it: their common face is nearly parallel to the
slices, so no slice shows a GB line between them and overlap links the shrinking sections of
one to the growing sections of the other. Each such error joins two grains, and it compounds
with the stack length: the longer the stack, the more grains end inside it (issue 3: on
60-slice stacks, seeds 41-48, such end-to-end joins were the largest class of unmatched
grains after the 3D refinement: 10 of 41).

Three signs of such a join are looked for in each linked grain's profiles along z:

* a **dip of the section area** (all the grain's sections in a slice pooled, so that a
  section split in two in one slice does not count; slices the grain skips are left out):
  the square root of the section area of a convex body is a concave function of z
  (Brunn-Minkowski), so one grain has no dip at all, while two grains joined end to end
  shrink and grow again. A dip below ``max_dip`` times the smaller of the largest areas on
  either side (after a 3-slice running median) cuts the grain there, deepest first
  (:func:`dip_cuts`). On seeds 41-48 at 0.35: 8 cuts, all between two truth grains; joins
  10 -> 2 (refined grains), matched 87.8 -> 90.2 %. Small grains (200 x 60 nm platelets,
  seeds 71-73) are joined with shallower dips: at 0.7, 74.9 -> 84.3 % matched (end-to-end
  joins 47 -> 7), the 300 x 80 nm seeds unchanged within one grain;
* a **bright GB sheet**: the slice that cuts a GB face nearly parallel to the slices shows
  the GB phase as a bright patch, not a line, so the grain's mean section brightness (all
  pixels) peaks there, at least ``min_sheet`` (normalised units) above the levels on either
  side (:func:`sheet_cuts`; only where the section is not a grain end, whose GB halo alone
  brightens it). Issue 3, 60-slice stacks at 0.5: 200 x 60 nm platelets, seeds 71-76, 691
  -> 694 of 750 truth grains matched; 300 x 80 nm seeds 41-64, 658 -> 660 of 672; a peak of
  0.3 also cut single grains;
* optionally a **brightness step** (orientation contrast): the median of the ``window``
  slices after slice k minus the median of the ``window`` slices before it, at least
  ``min_step`` (:func:`step_cuts`). Off by default: on the synthetic stacks a grain's mean
  brightness drifts by up to 0.3 (normalised units) along z as its section shrinks (the
  shading correction and the GB blur pull small sections toward their neighbours), and at
  0.2-0.3 about half of the brightness cuts fell inside one grain.

Memory: the slices stream from the artefacts; a grain is decided when its last slice has
been read, so only the sections (a few numbers each) of the grains still open are kept.
"""

from __future__ import annotations

import warnings

import numpy as np

from magtwin.imaging.stackio import progress


def section_sums(lab: np.ndarray, img: np.ndarray, b: np.ndarray | None,
                 interior_b: float = 0.2) -> tuple[np.ndarray, ...]:
    """Pixel count, interior pixel count and interior brightness sum, finite pixel count and
    brightness sum of every label of ``lab`` (y, x); interior = finite ``img`` and GB
    evidence ``b`` below ``interior_b``. Arrays indexed by label (0 included)."""
    n = int(lab.max()) + 1
    img = np.asarray(img, np.float64)
    fin = (lab > 0) & np.isfinite(img)
    sel = fin if b is None else fin & (np.asarray(b, np.float32) < interior_b)
    return (np.bincount(lab.ravel(), minlength=n), np.bincount(lab[sel], minlength=n),
            np.bincount(lab[sel], img[sel], minlength=n), np.bincount(lab[fin], minlength=n),
            np.bincount(lab[fin], img[fin], minlength=n))


def _strongest_apart(score: np.ndarray, ks: np.ndarray, threshold: float, spacing: int) -> list[int]:
    """Positions ``ks[i]`` taken in order of decreasing ``score[i]`` while it is at least
    ``threshold``, each at least ``spacing`` from those already taken; sorted."""
    cuts: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if score[i] < threshold:
            break
        k = int(ks[i])
        if all(abs(k - c) >= spacing for c in cuts):
            cuts.append(k)
    return sorted(cuts)


def step_cuts(level: np.ndarray, window: int = 4, min_step: float = 0.15) -> list[int]:
    """Positions ``k`` where a profile ``level`` (n,) steps: ``|median(level[k:k+w]) -
    median(level[k-w:k])| >= min_step``, largest first, each at least ``w`` from the
    others (so every piece keeps ``w`` entries); NaN entries are left out of the medians.
    Returns the sorted positions (a cut at ``k`` starts a new piece at ``k``)."""
    level = np.asarray(level, np.float64)
    w, n = int(window), len(level)
    if n < 2 * w:
        return []
    ks = np.arange(w, n - w + 1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN windows
        step = np.abs(np.array([np.nanmedian(level[k:k + w]) - np.nanmedian(level[k - w:k])
                                for k in ks]))
    step[~np.isfinite(step)] = 0.0
    return _strongest_apart(step, ks, min_step, w)


def dip_cuts(area: np.ndarray, max_dip: float = 0.35, min_len: int = 2) -> list[int]:
    """Positions ``k`` where a section-area profile ``area`` (n,) has a dip: the area at
    ``k`` (after a 3-slice running median) is below ``max_dip`` times the smaller of the
    largest areas before and after it. The square root of the section area of a convex body
    is a concave function of z (Brunn-Minkowski), so one grain has no dip at all; a deep one
    is a grain ending where the next one starts. Deepest first, recursively; every piece
    keeps ``min_len`` entries. A cut at ``k`` starts a new piece at ``k``."""
    a = np.asarray(area, np.float64)
    n = len(a)
    if n < 2 * min_len + 1:
        return []
    if n >= 3:
        a = np.median(np.stack([np.r_[a[:1], a[:-1]], a, np.r_[a[1:], a[-1:]]]), axis=0)
    left = np.maximum.accumulate(a)
    right = np.maximum.accumulate(a[::-1])[::-1]
    ks = np.arange(min_len, n - min_len + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = a[ks] / np.minimum(left[ks - 1], right[ks])
    depth[~np.isfinite(depth)] = np.inf
    i = int(np.argmin(depth))
    if depth[i] >= max_dip:
        return []
    k = int(ks[i])
    return (dip_cuts(area[:k], max_dip, min_len) + [k]
            + [k + c for c in dip_cuts(area[k:], max_dip, min_len)])


def sheet_cuts(level: np.ndarray, area: np.ndarray, min_sheet: float = 0.3, window: int = 3,
               min_len: int = 2, min_area: float = 0.5) -> list[int]:
    """Positions ``k`` where a grain's mean section brightness over all its pixels,
    ``level`` (n,), peaks: at least ``min_sheet`` above the medians of the ``window`` entries
    on either side (both), at an entry whose ``area`` is at least ``min_area`` times the
    smaller of the largest areas before and after it (not a grain end, where the GB halo
    alone brightens a small section). Highest first; every piece keeps ``min_len`` entries;
    NaN entries are left out. A cut at ``k`` starts a new piece at ``k``."""
    lv = np.asarray(level, np.float64)
    a = np.asarray(area, np.float64)
    n, w = len(lv), int(window)
    if n < 2 * min_len + 1:
        return []
    left = np.maximum.accumulate(a)
    right = np.maximum.accumulate(a[::-1])[::-1]
    ks = np.arange(min_len, n - min_len + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN windows
        side = np.array([max(np.nanmedian(lv[max(0, k - w):k]), np.nanmedian(lv[k + 1:k + 1 + w]))
                         for k in ks])
    height = lv[ks] - side
    height[~np.isfinite(height) | (a[ks] < min_area * np.minimum(left[ks - 1], right[np.minimum(ks + 1, n - 1)]))] = -np.inf
    return _strongest_apart(height, ks, min_sheet, min_len)


def split_profiles(z: np.ndarray, grain: np.ndarray, area: np.ndarray, cnt: np.ndarray,
                   tot: np.ndarray, window: int = 4, min_step: float | None = 0.2,
                   max_dip: float | None = 0.35, min_px: int = 20,
                   fcnt: np.ndarray | None = None, ftot: np.ndarray | None = None,
                   min_sheet: float | None = None) -> np.ndarray:
    """Piece index (0, 1, ...) of every section after cutting each grain at the dips of its
    section-area profile (:func:`dip_cuts`, ``max_dip`` None: off), then each piece at the
    bright GB sheets it crosses (:func:`sheet_cuts`, ``min_sheet`` None: off) and then at
    its brightness steps (:func:`step_cuts`, ``min_step`` None: off).

    Parameters: per section, its slice ``z``, its ``grain``, its pixel count ``area``, the
    interior pixel count ``cnt`` and brightness sum ``tot``, and the finite pixel count
    ``fcnt`` and brightness sum ``ftot`` (:func:`section_sums`); sections with fewer than
    ``min_px`` interior pixels do not count toward the brightness levels. Returns int64
    (m,).
    """
    m = len(z)
    piece = np.zeros(m, np.int64)
    if m == 0:
        return piece
    order = np.lexsort((z, grain))
    g_s, z_s = grain[order], z[order]
    starts = np.flatnonzero(np.r_[True, g_s[1:] != g_s[:-1]])
    stops = np.r_[starts[1:], m]
    w = int(window)
    for a, e in zip(starts, stops):
        zz = z_s[a:e]
        if zz[-1] - zz[0] + 1 < min(2 * w, 5):
            continue
        idx = order[a:e]
        # per-slice profiles of the grain (its sections in one slice pooled)
        z0 = zz[0]
        nzs = zz[-1] - z0 + 1
        cuts = []
        # slices the grain skips (linked across a gap) are left out of its profiles
        a_sl = np.bincount(zz - z0, area[idx], minlength=nzs)
        have = np.flatnonzero(a_sl > 0)
        if max_dip is not None:
            cuts = [int(have[k]) for k in dip_cuts(a_sl[have], float(max_dip))]
        if min_sheet is not None and fcnt is not None:
            # a GB face nearly parallel to the slices shows as a bright sheet in the slice
            # that cuts it: where one grain ends and the next one starts at its place
            f_sl = np.bincount(zz - z0, fcnt[idx], minlength=nzs)[have]
            with np.errstate(invalid="ignore", divide="ignore"):
                lev = np.bincount(zz - z0, ftot[idx], minlength=nzs)[have] / f_sl
            lev[f_sl < min_px] = np.nan
            pos = np.searchsorted(have, cuts)
            more = []
            for lo, hi in zip([0] + list(pos), list(pos) + [len(have)]):
                more += [int(have[lo + k]) for k in
                         sheet_cuts(lev[lo:hi], a_sl[have][lo:hi], float(min_sheet))]
            cuts = sorted(cuts + more)
        c_sl = np.bincount(zz - z0, np.where(cnt[idx] >= min_px, cnt[idx], 0), minlength=nzs)
        t_sl = np.bincount(zz - z0, np.where(cnt[idx] >= min_px, tot[idx], 0.0), minlength=nzs)
        with np.errstate(invalid="ignore", divide="ignore"):
            level = t_sl / c_sl
            own = tot[idx] / cnt[idx]
        level[c_sl == 0] = np.nan
        steps = []
        if min_step is not None:
            for lo, hi in zip([0] + cuts, cuts + [nzs]):
                steps += [lo + k for k in step_cuts(level[lo:hi], w, float(min_step))]
        if not cuts and not steps:
            continue
        allc = sorted(cuts + steps)
        local = np.searchsorted(np.asarray(allc), zz - z0, side="right")
        # sections near a brightness step go to the side whose level their own brightness
        # is closer to: where the two grains coexist in a slice, each keeps its sections
        for k in steps:
            j = allc.index(k)
            lo = np.nanmedian(level[k - w:k])
            hi = np.nanmedian(level[k:k + w])
            near = (np.abs(zz - z0 - k) <= w) & (cnt[idx] >= min_px) & np.isfinite(own)
            near &= (local == j) | (local == j + 1)
            local[near] = np.where(np.abs(own[near] - hi) < np.abs(own[near] - lo), j + 1, j)
        piece[idx] = local
    return piece


def split_tracks(out, track_of, tracks, image, boundary=None, window: int = 4,
                 min_step: float | None = None, max_dip: float | None = 0.35,
                 interior_b: float = 0.2, min_sheet: float | None = 0.5):
    """Cut the linked grains of :func:`magtwin.reconstruct.grains.link_sections` where two
    grains were linked end to end (module docstring), **in place**: sections of every piece
    after the first get a new track (one per piece). ``out`` (z, y, x) holds the local section
    labels, ``track_of`` their tracks, ``image`` the aligned volume (None: no brightness or
    sheet cuts), ``boundary`` the GB evidence; ``max_dip``, ``min_sheet``, ``min_step``:
    :func:`split_profiles` (None: that cut off).

    Streams over the slices: a grain is decided when its last slice has been read, and only
    the sections of grains still open are kept (memory follows the open grains, not the
    stack length).

    Returns ``(n_cuts, size, first, last)``: per track id (after the split; index = track id,
    only roots meaningful) its voxel count, first and last slice -- recomputed from the
    sections, so the caller need not trust the tracks' own bookkeeping after the split. The
    tracks' GB-evidence sums (``tracks.bsum``) are recomputed the same way.
    """
    nz = out.shape[0]
    n_tracks = len(tracks.parent)
    root = np.array([tracks.find(t) for t in range(n_tracks)], np.int64)
    end = np.full(n_tracks, -1, np.int64)
    np.maximum.at(end, root, np.frombuffer(tracks.last, np.int64))
    starts = np.frombuffer(track_of.start, np.int64)
    flat = np.frombuffer(track_of.flat, np.int32)
    # per final track id: voxels, first slice, last slice, GB-evidence sum
    stats = {}
    # z, label, grain, area, interior count, sum, GB sum, finite count, sum
    open_rows = np.zeros((0, 9))
    n_cuts = 0
    for zi in range(nz):
        lab = np.asarray(out[zi]).astype(np.int64)
        b = None if boundary is None else np.asarray(boundary[zi], np.float32)
        area, cnt, tot, fcnt, ftot = section_sums(
            lab, np.zeros(lab.shape) if image is None else image[zi], b, interior_b)
        ids = np.flatnonzero(area[1:]) + 1
        bsum = (np.zeros(len(ids)) if b is None else
                np.bincount(lab.ravel(), b.ravel().astype(np.float64), minlength=len(area))[ids])
        g = root[flat[starts[zi] + ids]]
        rows = np.concatenate([open_rows, np.stack(
            [np.full(len(ids), zi), ids, g, area[ids], cnt[ids], tot[ids], bsum, fcnt[ids],
             ftot[ids]], axis=1)])
        done = end[g] == zi
        if done.any():
            sel = np.isin(rows[:, 2], np.unique(g[done]))
            n_cuts += _decide(rows[sel], tracks, flat, starts, stats, window, min_step, max_dip,
                              None if image is None else min_sheet)
            rows = rows[~sel]
        open_rows = rows
        progress("grains/zsplit", zi, nz)
    n_all = len(tracks.parent)
    size = np.zeros(n_all, np.int64)
    first = np.full(n_all, nz, np.int64)
    last = np.full(n_all, -1, np.int64)
    bs = np.frombuffer(tracks.bsum, np.float64)
    bs[:] = 0.0
    if stats:
        t = np.fromiter(stats, np.int64, len(stats))
        v = np.array(list(stats.values()))
        size[t], first[t], last[t], bs[t] = v[:, 0], v[:, 1], v[:, 2], v[:, 3]
    return n_cuts, size, first, last


def _decide(rows: np.ndarray, tracks, flat: np.ndarray, starts: np.ndarray, stats: dict,
            window: int, min_step, max_dip, min_sheet=None) -> int:
    """Cut the grains whose sections are ``rows`` (all of their sections; columns of
    :func:`split_tracks`), give the pieces new tracks in ``flat`` and record the statistics
    of every resulting grain in ``stats``; returns the number of new pieces."""
    z = rows[:, 0].astype(np.int64)
    label = rows[:, 1].astype(np.int64)
    grain = rows[:, 2].astype(np.int64)
    piece = split_profiles(z, grain, rows[:, 3], rows[:, 4], rows[:, 5], window, min_step, max_dip,
                           fcnt=rows[:, 7], ftot=rows[:, 8], min_sheet=min_sheet)
    n_new = 0
    cut = piece > 0
    if cut.any():
        keys, inv = np.unique(np.stack([grain[cut], piece[cut]], axis=1), axis=0, return_inverse=True)
        first_z = np.full(len(keys), np.iinfo(np.int64).max)
        np.minimum.at(first_z, inv.ravel(), z[cut])
        new_t = np.array([tracks.new(int(fz)) for fz in first_z], np.int64)
        grain = grain.copy()
        grain[cut] = new_t[inv.ravel()]
        flat[starts[z[cut]] + label[cut]] = grain[cut]
        n_new = len(keys)
    ids, inv = np.unique(grain, return_inverse=True)
    vox = np.bincount(inv, rows[:, 3])
    z0 = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(z0, inv, z)
    z1 = np.full(len(ids), -1)
    np.maximum.at(z1, inv, z)
    gb = np.bincount(inv, rows[:, 6])
    for i, t in enumerate(ids.tolist()):
        stats[t] = (vox[i], z0[i], z1[i], gb[i])
    return n_new
