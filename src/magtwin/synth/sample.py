"""The synthetic sample: parameters -> SEM stack + ground truth, in memory or streamed.

:func:`make_sample` returns everything in memory (small and test stacks);
:func:`magtwin.synth.output.generate_files` streams the same slices straight into the TIFF and
``truth.h5`` (large stacks, e.g. 500 x 1024 x 1024). Both use :class:`SampleGenerator`, which
renders slice ``k`` independently of the others (random streams are keyed by purpose and slice
index), so the two routes give identical data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from magtwin.synth.artefacts import Curtains, intensity_to_dn, poisson_gaussian, shading_field
from magtwin.synth.drift import random_walk_shifts
from magtwin.synth.microstructure import Microstructure, grain_geometry
from magtwin.synth.params import cap_rows_px, resolve_params
from magtwin.synth.render import SceneRenderer

# purposes of the independent random streams (never renumber: changes every sample)
_GEOMETRY, _AXES, _CONTRAST, _DRIFT, _SHADING, _CURTAINS, _BRIGHTNESS, _NOISE = range(8)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass
class SyntheticSample:
    """A synthetic FIB-SEM stack and its ground truth.

    Attributes
    ----------
    stack : (z, y, x) uint16 raw SEM slices (drifted, with artefacts)
    voxel_size_nm : (3,) float64, (z, y, x) nm
    truth : dict with
        ``labels`` (z, y, x) uint32 grain ids in the frame of slice 0 (0 = cap, no grain);
        every sample voxel carries the id of the grain whose (Laguerre) cell holds its centre,
        including voxels of the GB/TJ phase; ids run 1..n_grains, each present;
        ``gb_mask``, ``tj_mask`` (z, y, x) bool: the GB / TJ phase touches the voxel's pixel;
        ``shifts_px`` (z, 2) float64 (dy, dx), see :mod:`magtwin.synth.drift`;
        ``easy_axes`` (n_grains + 1, 3) unit c-axes in (x, y, z) order, row = grain id (row 0 = 0);
        ``alignment_axis`` (3,) unit vector, (x, y, z) order;
        ``cap_rows`` (start, stop) rows of the cap in the frame of slice 0, or None; in raw
        slice k the cap/sample interface is at row ``stop - 0.5 - dy_k``;
        ``grain_table`` dict of columns (length n_grains, row i = grain id i + 1): ``id``,
        ``seed_nm`` (x, y, z), ``centroid_nm`` (x, y, z), ``voxel_count``, ``volume_nm3``,
        ``diameter_nm``, ``thickness_nm`` (from second moments of the labels, as for a
        cylinder: D = 4 sqrt(mean of the two largest variances), t = sqrt(12 * smallest)),
        ``laguerre_weight_nm2``, ``brightness``;
        ``seeds_nm`` (n_grains + 1, 3), ``laguerre_weights_nm2`` (n_grains + 1,),
        ``metric`` (3, 3) the platelet scaling S, ``seed`` int, ``params`` dict (resolved).
    params : the resolved parameters
    """

    stack: np.ndarray
    voxel_size_nm: np.ndarray
    truth: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class SampleGenerator:
    """Renders raw and truth slices of one sample one at a time (see module docstring)."""

    def __init__(self, params: Mapping[str, Any] | None = None, source: str | None = None, **overrides):
        p = self.params = resolve_params(params, source=source, **overrides)
        seed = int(p["seed"])
        self.shape = tuple(int(s) for s in p["shape_px"])
        nz, ny, nx = self.shape
        vz, vy, vx = self.voxel = tuple(float(v) for v in p["voxel_size_nm"])
        self.micro: Microstructure = grain_geometry(p, _rng(seed, _GEOMETRY), _rng(seed, _AXES))
        n = self.micro.n_grains
        u = _rng(seed, _CONTRAST).uniform(-0.5, 0.5, n)
        self.brightness = p["grain_intensity"] + p["grain_contrast"] * u
        self.renderer = SceneRenderer(p, self.micro, self.brightness)
        self.shifts_px = random_walk_shifts(nz, p["drift_step_px"], p["drift_mean_px"], _rng(seed, _DRIFT))
        self.shading = shading_field((ny, nx), p["shading"], _rng(seed, _SHADING))
        self.slice_gain = 1.0 + p["brightness_jitter"] * _rng(seed, _BRIGHTNESS).normal(0, 1, nz)
        lo = (min(self.shifts_px[:, 1].min(), 0) - 10) * vx
        hi = (max(self.shifts_px[:, 1].max(), 0) + nx + 10) * vx
        self.curtains = Curtains.random((lo, hi), ny * vy, vx, p["curtaining"],
                                        p["curtain_period_slices"], _rng(seed, _CURTAINS))
        self.cap_rows = (0, cap_rows_px(p)) if p["cap"] else None

    def raw_slice(self, k: int) -> np.ndarray:
        """Raw SEM slice ``k`` (uint16, (y, x)), field of view displaced by ``shifts_px[k]``."""
        p = self.params
        nz, ny, nx = self.shape
        vz, vy, vx = self.voxel
        dy, dx = self.shifts_px[k]
        img = self.renderer.ideal_window(k, (dy, dx), (ny, nx))
        if p["curtaining"] > 0:
            xw = (np.arange(nx) + dx) * vx
            depth = (np.arange(ny) + dy) * vy - self.renderer.y_top
            img = img * self.curtains.factor(k, xw, depth)
        img = img * self.shading * self.slice_gain[k]
        img = poisson_gaussian(img, p["noise_level"], p["noise_poisson_fraction"],
                               p["grain_intensity"], _rng(int(p["seed"]), _NOISE, k))
        return intensity_to_dn(img)

    def truth_slice(self, k: int):
        """(labels, gb_mask, tj_mask) of slice ``k`` in the frame of slice 0."""
        return self.renderer.truth_slice(k)

    def slices(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(k, raw, labels, gb, tj)`` for every slice, in order."""
        for k in range(self.shape[0]):
            yield (k, self.raw_slice(k), *self.truth_slice(k))

    # -- truth ----------------------------------------------------------------------------
    def new_moments(self) -> np.ndarray:
        return np.zeros((10, self.micro.n_grains + 1))

    def accumulate(self, mom: np.ndarray, k: int, labels: np.ndarray) -> None:
        """Add slice ``k``'s voxel moments (count, sums of x, y, z and their products)."""
        vz, vy, vx = self.voxel
        ny, nx = labels.shape
        Y, X = np.meshgrid(np.arange(ny) * vy, np.arange(nx) * vx, indexing="ij")
        Z = k * vz
        lab = labels.ravel()
        X, Y = X.ravel(), Y.ravel()
        m = mom.shape[1]
        for i, w in enumerate((None, X, Y, Z + 0 * X, X * X, Y * Y, (Z * Z) + 0 * X, X * Y, X * Z, Y * Z)):
            mom[i] += np.bincount(lab, weights=w, minlength=m)

    def truth_arrays(self, mom: np.ndarray) -> dict[str, Any]:
        """Everything in the truth except the volumes, from the accumulated moments."""
        n = self.micro.n_grains
        vz, vy, vx = self.voxel
        cnt = mom[0, 1:]
        safe = np.maximum(cnt, 1)
        mean = mom[1:4, 1:] / safe
        second = mom[4:10, 1:] / safe
        xx, yy, zz, xy, xz, yz = second
        mx, my, mz = mean
        cov = np.empty((n, 3, 3))
        cov[:, 0, 0], cov[:, 1, 1], cov[:, 2, 2] = xx - mx * mx, yy - my * my, zz - mz * mz
        cov[:, 0, 1] = cov[:, 1, 0] = xy - mx * my
        cov[:, 0, 2] = cov[:, 2, 0] = xz - mx * mz
        cov[:, 1, 2] = cov[:, 2, 1] = yz - my * mz
        ev = np.clip(np.linalg.eigvalsh(cov), 0, None)  # ascending
        pad = lambda a: np.concatenate([np.zeros((1,) + a.shape[1:]), a])  # noqa: E731
        table = {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "seed_nm": self.micro.seeds_nm.copy(),
            "centroid_nm": mean.T.copy(),
            "voxel_count": cnt.astype(np.int64),
            "volume_nm3": cnt * vz * vy * vx,
            "diameter_nm": 4.0 * np.sqrt(0.5 * (ev[:, 1] + ev[:, 2])),
            "thickness_nm": np.sqrt(12.0 * ev[:, 0]),
            "laguerre_weight_nm2": self.micro.weights_nm2.copy(),
            "brightness": self.brightness.copy(),
        }
        return {
            "shifts_px": self.shifts_px.copy(),
            "easy_axes": pad(self.micro.easy_axes),
            "alignment_axis": self.micro.alignment_axis.copy(),
            "cap_rows": self.cap_rows,
            "grain_table": table,
            "seeds_nm": pad(self.micro.seeds_nm),
            "laguerre_weights_nm2": pad(self.micro.weights_nm2[:, None])[:, 0],
            "metric": self.micro.metric.copy(),
            "seed": int(self.params["seed"]),
            "params": self.params,
        }


def make_sample(params: Mapping[str, Any] | None = None, **overrides) -> SyntheticSample:
    """Generate a synthetic FIB-SEM sample in memory.

    Parameters
    ----------
    params : the ``synth`` config section (missing keys take their defaults; see
        :data:`magtwin.synth.params.SCHEMA`)
    **overrides : individual parameters, e.g. ``make_sample(seed=3, shape_px=[20, 128, 128])``

    Raises
    ------
    ConfigError
        For an unknown key, a wrong type or an inconsistent value, naming the key.
    """
    gen = SampleGenerator(params, **overrides)
    nz, ny, nx = gen.shape
    stack = np.empty((nz, ny, nx), np.uint16)
    labels = np.empty((nz, ny, nx), np.uint32)
    gb = np.empty((nz, ny, nx), bool)
    tj = np.empty((nz, ny, nx), bool)
    mom = gen.new_moments()
    for k, raw, lab, g, t in gen.slices():
        stack[k], labels[k], gb[k], tj[k] = raw, lab, g, t
        gen.accumulate(mom, k, lab)
    truth = gen.truth_arrays(mom)
    truth.update(labels=labels, gb_mask=gb, tj_mask=tj)
    return SyntheticSample(stack=stack, voxel_size_nm=np.asarray(gen.voxel, np.float64),
                           truth=truth, params=gen.params)
