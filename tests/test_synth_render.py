"""Synthetic sample rendering: GB partial volume, drift with new material, cap fiducials."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from magtwin.synth import SampleGenerator, make_sample
from magtwin.synth.artefacts import DN_OFFSET, DN_PER_UNIT

CLEAN = dict(noise_level=0.0, shading=0.0, curtaining=0.0, brightness_jitter=0.0)


def _brightness(stack):
    return (stack.astype(float) - DN_OFFSET) / DN_PER_UNIT


@pytest.mark.parametrize("seed, gb_nm", [(0, 3.0), (2, 1.5), (0, 4.0)])
def test_gb_thickness_by_area_over_boundary(seed, gb_nm):
    """Two grains share one plane. Its orientation is fitted to where the *labels* change;
    the GB area per column comes from the *image* brightness (area fraction). A slab of
    thickness t crosses a column over t / |n_y|, so t = (column GB length) * |n_y|."""
    s = make_sample(CLEAN, shape_px=[6, 96, 128], n_grains=2, gb_thickness_nm=gb_nm, seed=seed,
                    grain_contrast=0.0, psf_sigma_px=0.0, drift_step_px=0.0, tj_size_nm=0.0)
    p = s.params
    vz, vy, vx = p["voxel_size_nm"]
    r1 = s.truth["cap_rows"][1]
    f = (_brightness(s.stack[:, r1:]) - p["grain_intensity"]) / (p["gb_intensity"] - p["grain_intensity"])
    change = np.diff(s.truth["labels"][:, r1:].astype(np.int64), axis=1) != 0
    k, c = np.nonzero(change.sum(axis=1) == 1)           # columns crossed once by the boundary
    r = np.argmax(change[k, :, c], axis=1)
    keep = (r > 3) & (r < change.shape[1] - 4)            # slab fully inside the column
    k, c, r = k[keep], c[keep], r[keep]
    assert len(k) > 0.4 * change.shape[0] * change.shape[2]
    y = (r1 + r + 0.5) * vy
    (y0, slope_x, slope_z), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(y), c * vx, k * vz]), y,
                                                 rcond=None)
    n_y = 1.0 / np.sqrt(1.0 + slope_x ** 2 + slope_z ** 2)
    per_column = f[k, :, c].sum(axis=1) * vy
    assert per_column.mean() * n_y == pytest.approx(gb_nm, rel=0.02)
    # the truth mask covers every pixel the GB phase reaches
    gb = s.truth["gb_mask"][:, r1:]
    assert np.mean(gb[f > 0.02]) > 0.99


def test_tj_pockets_and_gb_brighter_than_grains():
    s = make_sample(CLEAN, shape_px=[4, 96, 128], n_grains=10, seed=1, drift_step_px=0.0)
    img = _brightness(s.stack)
    t = s.truth
    r1 = t["cap_rows"][1]
    inside = np.zeros_like(t["gb_mask"])
    inside[:, r1:] = ~ndimage.binary_dilation(t["gb_mask"] | t["tj_mask"], iterations=2)[:, r1:]
    assert t["tj_mask"].sum() > 0 and inside.sum() > 0
    assert np.median(img[t["tj_mask"]]) > np.median(img[t["gb_mask"] & ~t["tj_mask"]]) > \
        np.median(img[inside]) + 0.05


@pytest.fixture(scope="module")
def drifted():
    params = dict(CLEAN, shape_px=[8, 96, 128], n_grains=6, drift_step_px=1.0, seed=7)
    return params, make_sample(params)


def test_drift_undone_by_true_shift_in_cap(drifted):
    """The cap and its fiducials do not change between slices: raw slice k shifted by
    shifts_px[k] (scipy.ndimage.shift) matches slice 0 there; the opposite sign does not."""
    _, s = drifted
    img = _brightness(s.stack)
    shifts = s.truth["shifts_px"]
    r1 = s.truth["cap_rows"][1]
    assert np.abs(shifts).max() > 1.5
    for k in range(1, len(img)):
        dy, dx = shifts[k]
        my, mx = int(np.ceil(abs(dy))) + 1, int(np.ceil(abs(dx))) + 1
        rows, cols = slice(my, r1 - my - 1), slice(mx, img.shape[2] - mx)
        good = ndimage.shift(img[k], (dy, dx), order=3, mode="nearest")[rows, cols] - img[0][rows, cols]
        bad = ndimage.shift(img[k], (-dy, -dx), order=3, mode="nearest")[rows, cols] - img[0][rows, cols]
        assert np.sqrt(np.mean(good ** 2)) < 0.02
        assert np.sqrt(np.mean(bad ** 2)) > 0.05


def test_drift_brings_new_material_not_a_wrap(drifted):
    """Raw slice k equals the world at the shifted window - including the strip that lies
    outside slice 0's field of view - compared with a wider render of the same slice."""
    params, s = drifted
    gen = SampleGenerator(params)
    img = _brightness(s.stack)
    nz, ny, nx = img.shape
    m = 8
    for k in range(1, nz):
        dy, dx = s.truth["shifts_px"][k]
        wide = gen.renderer.ideal_window(k, (-m, -m), (ny + 2 * m, nx + 2 * m))
        yy, xx = np.mgrid[0:ny, 0:nx]
        ref = ndimage.map_coordinates(wide, [yy + dy + m, xx + dx + m], order=3, mode="nearest")
        inner = (slice(2, ny - 2), slice(0, nx))
        assert np.sqrt(np.mean((img[k] - ref)[inner] ** 2)) < 0.02
        # the entering strip: what a periodic wrap would put there is different material
        w = int(np.ceil(abs(dx)))
        if w >= 1:
            strip = slice(nx - w, nx) if dx > 0 else slice(0, w)
            wrapped = slice(0, w) if dx > 0 else slice(nx - w, nx)
            sample_rows = slice(s.truth["cap_rows"][1] + 2, ny - 2)
            new = img[k][sample_rows, strip]
            assert np.sqrt(np.mean((new - ref[sample_rows, strip]) ** 2)) < 0.02
            assert np.sqrt(np.mean((new - img[0][sample_rows, wrapped]) ** 2)) > 0.02


def test_truth_labels_in_frame_of_slice_0(drifted):
    """Truth labels[k] are unshifted: the grain seen at raw pixel (y, x) of slice k is the
    truth label at (y + dy, x + dx); the opposite convention disagrees far more often."""
    params, s = drifted
    gen = SampleGenerator(params)
    nz, ny, nx = s.stack.shape
    r1 = s.truth["cap_rows"][1]
    vz, vy, vx = 10.0, 5.0, 5.0
    k = int(np.argmax(np.abs(s.truth["shifts_px"]).sum(axis=1)))
    dy, dx = s.truth["shifts_px"][k]
    yy, xx = np.mgrid[r1 + 4:ny - 4, 4:nx - 4]
    world = np.stack([(xx + dx) * vx, (yy + dy) * vy, np.full(xx.shape, k * vz)], -1).reshape(-1, 3)
    raw_owner = gen.micro.owner(world).reshape(xx.shape) + 1

    def mismatch(sy, sx):
        yi = np.clip(np.rint(yy + sy).astype(int), 0, ny - 1)
        xi = np.clip(np.rint(xx + sx).astype(int), 0, nx - 1)
        return np.mean(s.truth["labels"][k][yi, xi] != raw_owner)

    assert mismatch(dy, dx) < 0.02
    assert mismatch(dy, dx) < 0.5 * mismatch(-dy, -dx)


@pytest.mark.parametrize("level", [0.04, 0.08])
def test_noise_std_at_grain_brightness(level):
    """Poisson-Gaussian noise is calibrated to std = noise_level at grain_intensity."""
    s = make_sample(CLEAN, shape_px=[3, 96, 128], n_grains=3, seed=2, noise_level=level,
                    grain_contrast=0.0, psf_sigma_px=0.0, drift_step_px=0.0)
    t = s.truth
    inside = ~ndimage.binary_dilation(t["gb_mask"] | t["tj_mask"] | (t["labels"] == 0), iterations=3)
    values = _brightness(s.stack)[inside]
    assert values.size > 10000
    assert values.mean() == pytest.approx(s.params["grain_intensity"], abs=0.005)
    assert values.std() == pytest.approx(level, rel=0.05)
