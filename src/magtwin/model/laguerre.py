"""Fit a Laguerre (power) tessellation to a 3D grain label volume.

A power diagram assigns ``x`` to ``argmin_j |x - s_j|² - w_j = argmax_j (a_j·x + b_j)`` with
``a_j = 2 s_j`` and ``b_j = w_j - |s_j|²``: it is exactly a multi-class *linear* classifier
of the voxel coordinates, and every linear classifier is a power diagram. Fitting the cells
to the labels is therefore multinomial logistic regression (convex) on voxel centres,
started from the Voronoi diagram of the label centroids and solved with L-BFGS
(``scipy.optimize``). Each voxel only competes with the grains its label touches, which
keeps the cost at O(voxels × neighbours).

Coordinates are nm, points ``(x, y, z)``; the label volume is ``(z, y, x)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from magtwin.errors import InputError

LOG = logging.getLogger(__name__)


@dataclass
class LaguerreFit:
    """Fitted tessellation: ``sites_nm`` (G, 3) xyz, ``weights_nm2`` (G,), ``grain_ids``
    (G,) the labels they stand for, ``accuracy`` (fraction of labelled voxels whose fitted
    cell is their label), ``accuracy_initial`` (centroid Voronoi), ``n_voxels_scored``."""

    sites_nm: np.ndarray
    weights_nm2: np.ndarray
    grain_ids: np.ndarray
    accuracy: float
    accuracy_initial: float
    n_voxels_scored: int


def adjacency(labels: np.ndarray, distance_vox: int = 2) -> set[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, of non-zero labels closer than ``distance_vox`` voxels
    along an axis (so grains separated by a thin unassigned GB line still count as touching)."""
    pairs = set()
    for axis in range(3):
        n = labels.shape[axis]
        for k in range(1, distance_vox + 1):
            if k >= n:
                break
            a = np.take(labels, np.arange(n - k), axis=axis).ravel()
            b = np.take(labels, np.arange(k, n), axis=axis).ravel()
            m = (a != b) & (a > 0) & (b > 0)
            if m.any():
                ab = np.unique(np.stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])], 1), axis=0)
                pairs.update(map(tuple, ab.tolist()))
    return pairs


def check_labels(labels: np.ndarray, source, touch_distance_vox: int = 2) -> tuple[np.ndarray, set]:
    """Validate a label volume; return the grain ids present and their adjacency.

    Raises InputError for: not 3D, fewer than two grains, grains that touch no other grain.
    """
    if labels.ndim != 3 or min(labels.shape) < 2:
        raise InputError(f"labels must be a 3D (z, y, x) volume, got shape {labels.shape}", source)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) < 2:
        raise InputError(f"labels contain {len(ids)} grain(s); a model needs at least two grains", source)
    pairs = adjacency(labels, touch_distance_vox)
    touching = {a for ab in pairs for a in ab}
    lonely = [int(g) for g in ids if int(g) not in touching]
    if lonely:
        raise InputError(
            f"{len(lonely)} grain(s) do not touch any other grain (e.g. {lonely[:5]}); the model "
            f"needs densely packed grains", source)
    return ids, pairs


def voxel_centres_nm(idx_zyx: np.ndarray, voxel_size_nm) -> np.ndarray:
    """(n, 3) xyz nm centres of voxels given as (n, 3) zyx indices."""
    vz, vy, vx = voxel_size_nm
    return np.column_stack([(idx_zyx[:, 2] + 0.5) * vx, (idx_zyx[:, 1] + 0.5) * vy, (idx_zyx[:, 0] + 0.5) * vz])


def power_labels(points: np.ndarray, sites: np.ndarray, weights: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Index of the power cell containing each point (n, 3)."""
    a, b = 2 * sites, weights - np.einsum("ij,ij->i", sites, sites)
    out = np.empty(len(points), np.int64)
    for s in range(0, len(points), chunk):
        out[s:s + chunk] = np.argmax(points[s:s + chunk] @ a.T + b, axis=1)
    return out


def voxel_accuracy(labels: np.ndarray, voxel_size_nm, sites_nm: np.ndarray, weights_nm2: np.ndarray,
                   grain_ids: np.ndarray, max_voxels: int = 2_000_000, seed: int = 0) -> float:
    """Fraction of the labelled voxels of ``labels`` (z, y, x) whose power cell (sites (G, 3)
    xyz nm, weights (G,) nm²) stands for their label (a seeded uniform subsample of at most
    ``max_voxels``)."""
    nz = np.flatnonzero(labels.ravel())
    if len(nz) > max_voxels:
        nz = np.random.default_rng(seed).choice(nz, size=max_voxels, replace=False)
    pts = voxel_centres_nm(np.column_stack(np.unravel_index(nz, labels.shape)), voxel_size_nm)
    return float(np.mean(np.asarray(grain_ids)[power_labels(pts, sites_nm, weights_nm2)] == labels.ravel()[nz]))


def fit_laguerre(
    labels: np.ndarray,
    voxel_size_nm,
    source=None,
    n_sample: int = 100_000,
    iterations: int = 80,
    touch_distance_vox: int = 2,
    seed: int = 0,
) -> LaguerreFit:
    """Fit sites and weights to ``labels`` (z, y, x); see the module docstring."""
    ids, pairs = check_labels(labels, source, touch_distance_vox)
    rng = np.random.default_rng(seed)
    g = len(ids)
    index = np.zeros(int(ids.max()) + 1, np.int64)
    index[ids] = np.arange(g)
    nz = np.flatnonzero(labels.ravel())
    # sample: half near boundaries (where the fit is decided), half anywhere
    lab_flat = labels.ravel()
    shape = labels.shape
    # half of the sample at grain boundaries (where the fit is decided), half anywhere
    bmask = np.zeros(shape, bool)
    for axis in range(3):
        for k in (1, 2):
            if shape[axis] <= k:
                continue
            a = np.take(labels, np.arange(shape[axis] - k), axis=axis)
            b = np.take(labels, np.arange(k, shape[axis]), axis=axis)
            d = a != b
            idx_lo = [slice(None)] * 3
            idx_hi = [slice(None)] * 3
            idx_lo[axis] = slice(0, shape[axis] - k)
            idx_hi[axis] = slice(k, shape[axis])
            bmask[tuple(idx_lo)] |= d
            bmask[tuple(idx_hi)] |= d
    bnd = np.flatnonzero(bmask.ravel() & (lab_flat > 0))
    del bmask
    n_b = min(len(bnd), n_sample // 2)
    sample = np.unique(np.concatenate([
        rng.choice(bnd, size=n_b, replace=False) if n_b else np.zeros(0, np.int64),
        rng.choice(nz, size=min(n_sample - n_b, len(nz)), replace=False)]))
    idx = np.column_stack(np.unravel_index(sample, shape))
    x = voxel_centres_nm(idx, voxel_size_nm)
    y = index[lab_flat[sample]]
    # centroids over all labelled voxels
    all_idx = np.column_stack(np.unravel_index(nz, shape))
    cent = np.zeros((g, 3))
    lab_all = index[lab_flat[nz]]
    cnt = np.bincount(lab_all, minlength=g).astype(float)
    pts_all = voxel_centres_nm(all_idx, voxel_size_nm)
    for d in range(3):
        cent[:, d] = np.bincount(lab_all, weights=pts_all[:, d], minlength=g) / cnt
    del all_idx
    # normalised coordinates
    centre = pts_all.mean(axis=0)
    scale = float(np.max(pts_all.max(axis=0) - pts_all.min(axis=0))) or 1.0
    del pts_all
    xn = (x - centre) / scale
    cn = (cent - centre) / scale
    # candidates: own grain and its touching neighbours
    nbrs = [[k] for k in range(g)]
    for a, b in pairs:
        nbrs[index[a]].append(index[b])
        nbrs[index[b]].append(index[a])
    kmax = max(len(n) for n in nbrs)
    cand_tab = np.full((g, kmax), -1, np.int64)
    for k, n in enumerate(nbrs):
        cand_tab[k, :len(n)] = n
    cand = cand_tab[y]  # (n, K), own grain in column 0
    mask = cand >= 0
    cand_safe = np.where(mask, cand, 0)
    # sharpness: a boundary about one voxel wide at the initial spacing
    spacing = np.median([np.linalg.norm(cn[index[a]] - cn[index[b]]) for a, b in pairs]) if pairs else 1.0
    vox = min(voxel_size_nm) / scale
    beta = 1.0 / (2.0 * spacing * vox)

    # initial guess: Voronoi of the centroids in the metric that makes the mean grain shape
    # round (platelet grains are flattened; an isotropic Voronoi misplaces their faces)
    cov = np.zeros((3, 3))
    for k in range(g):
        sel = y == k
        if sel.sum() > 3:
            d = xn[sel] - cn[k]
            cov += d.T @ d / sel.sum()
    cov /= g
    evals, evecs = np.linalg.eigh(cov)
    m2 = evecs @ np.diag(evals.mean() / np.maximum(evals, 1e-12 * evals.max())) @ evecs.T  # M² ∝ cov⁻¹
    a0 = 2 * cn @ m2
    b0 = -np.einsum("ij,jk,ik->i", cn, m2, cn)
    theta0 = np.concatenate([a0.ravel(), b0])
    n = len(y)

    def loss_grad(theta):
        a = theta[:3 * g].reshape(g, 3)
        b = theta[3 * g:]
        z = beta * (np.einsum("nkd,nd->nk", a[cand_safe], xn) + b[cand_safe])
        z = np.where(mask, z, -np.inf)
        zmax = z.max(axis=1, keepdims=True)
        e = np.exp(z - zmax)
        ssum = e.sum(axis=1, keepdims=True)
        p = e / ssum
        loss = np.sum(np.log(ssum[:, 0]) + zmax[:, 0] - z[:, 0]) / n
        r = p.copy()
        r[:, 0] -= 1.0
        r = np.where(mask, r, 0.0) * (beta / n)
        flat_c = cand_safe.ravel()
        flat_r = r.ravel()
        gb = np.bincount(flat_c, weights=flat_r, minlength=g)
        ga = np.column_stack([np.bincount(flat_c, weights=(r * xn[:, d:d + 1]).ravel(), minlength=g) for d in range(3)])
        return loss, np.concatenate([ga.ravel(), gb])

    def accuracy(theta):
        a = theta[:3 * g].reshape(g, 3)
        b = theta[3 * g:]
        pred = np.argmax(xn @ a.T + b, axis=1)
        return float(np.mean(pred == y))

    acc0 = accuracy(theta0)
    res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": int(iterations)})
    theta = res.x if accuracy(res.x) >= acc0 else theta0
    acc = accuracy(theta)
    a = theta[:3 * g].reshape(g, 3).copy()
    b = theta[3 * g:].copy()
    # the classifier is unchanged by a common shift of all (a_j, b_j) and a positive scale:
    # use them to keep the sites near the grains (well-conditioned planes)
    shift = a.mean(axis=0) - a0.mean(axis=0)
    a -= shift
    f = np.sqrt(np.mean((a0 - a0.mean(axis=0)) ** 2) / max(np.mean((a - a.mean(axis=0)) ** 2), 1e-300))
    a *= f
    b = b * f
    b -= b.mean() - b0.mean()
    # back to nm: score = (a/scale)·x + (b - a·centre/scale) = 2 s·x - |s|² + w
    sites = a / (2 * scale)
    weights = b - a @ centre / scale + np.einsum("ij,ij->i", sites, sites)
    # accuracy on all labelled voxels (a uniform subsample of at most 2e6 for big volumes)
    check = nz if len(nz) <= 2_000_000 else rng.choice(nz, size=2_000_000, replace=False)
    pts = voxel_centres_nm(np.column_stack(np.unravel_index(check, shape)), voxel_size_nm)
    truth = index[lab_flat[check]]
    acc = float(np.mean(power_labels(pts, sites, weights) == truth))
    acc0_sites = cent_init_sites = (a0 / (2 * scale))
    acc0 = float(np.mean(power_labels(pts, cent_init_sites, b0 - a0 @ centre / scale
                                      + np.einsum("ij,ij->i", acc0_sites, acc0_sites)) == truth))
    n = len(check)
    LOG.info("Laguerre fit: %d grains, voxel accuracy %.4f (centroid Voronoi %.4f) on %d voxels",
             g, acc, acc0, n)
    return LaguerreFit(sites, weights, ids.astype(np.int64), acc, acc0, int(n))
