"""Synthetic sample: reproducibility, the grain tessellation, easy axes, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.errors import ConfigError
from magtwin.synth import SampleGenerator, make_sample

SMALL = dict(shape_px=[6, 80, 96], n_grains=12)


@pytest.fixture(scope="module")
def small():
    return make_sample(SMALL, seed=3)


def test_same_seed_same_sample_other_seed_differs(small):
    again = make_sample(SMALL, seed=3)
    assert np.array_equal(small.stack, again.stack)
    assert np.array_equal(small.truth["labels"], again.truth["labels"])
    assert np.array_equal(small.truth["shifts_px"], again.truth["shifts_px"])
    other = make_sample(SMALL, seed=4)
    assert not np.array_equal(small.truth["labels"], other.truth["labels"])
    assert np.mean(small.stack != other.stack) > 0.5
    assert not np.allclose(small.truth["shifts_px"], other.truth["shifts_px"])


def test_contract_shapes_and_types(small):
    nz, ny, nx = SMALL["shape_px"]
    t = small.truth
    assert small.stack.shape == (nz, ny, nx) and small.stack.dtype == np.uint16
    assert np.allclose(small.voxel_size_nm, [10.0, 5.0, 5.0])
    assert t["labels"].dtype == np.uint32 and t["labels"].shape == (nz, ny, nx)
    assert t["gb_mask"].dtype == bool and t["tj_mask"].dtype == bool
    assert t["shifts_px"].shape == (nz, 2) and np.all(t["shifts_px"][0] == 0)
    n = SMALL["n_grains"]
    assert t["easy_axes"].shape == (n + 1, 3)
    assert np.allclose(np.linalg.norm(t["easy_axes"][1:], axis=1), 1.0)
    assert np.allclose(t["alignment_axis"], [0, 1, 0])
    assert list(t["grain_table"]["id"]) == list(range(1, n + 1))


def test_labels_are_the_laguerre_tessellation(small):
    """Every sample voxel belongs to the grain of least power distance in the platelet metric
    (checked by brute force over all seeds, metric built here from the parameters)."""
    p, t = small.params, small.truth
    n = p["n_grains"]
    labels = t["labels"]
    r0, r1 = t["cap_rows"]
    assert r0 == 0 and r1 == round(p["cap_thickness_nm"] / p["voxel_size_nm"][1])
    assert np.all(labels[:, r0:r1] == 0)
    assert np.all(labels[:, r1:] > 0)  # GB/TJ voxels keep their grain's id
    assert set(np.unique(labels[:, r1:])) == set(range(1, n + 1))  # exactly the requested count

    a = np.array(p["alignment_axis"], float)
    a /= np.linalg.norm(a)
    aspect = p["grain_diameter_nm"] / p["grain_thickness_nm"]
    S = np.eye(3) + (aspect - 1) * np.outer(a, a)
    seeds, w2 = t["seeds_nm"][1:], t["laguerre_weights_nm2"][1:]
    rng = np.random.default_rng(0)
    vz, vy, vx = p["voxel_size_nm"]
    k = rng.integers(0, labels.shape[0], 3000)
    r = rng.integers(r1, labels.shape[1], 3000)
    c = rng.integers(0, labels.shape[2], 3000)
    pts = np.stack([c * vx, r * vy, k * vz], axis=1)
    power = (((pts[:, None, :] - seeds[None]) @ S) ** 2).sum(-1) - w2[None]
    assert np.array_equal(labels[k, r, c], np.argmin(power, axis=1) + 1)


def test_platelets_flattened_along_alignment_axis():
    s = make_sample(shape_px=[12, 90, 120], n_grains=12, seed=5, noise_level=0.0)
    g = s.truth["grain_table"]
    big = g["voxel_count"] > 2000
    # second moments of a flat grain: the smallest principal extent lies along the press axis
    assert np.median(g["diameter_nm"][big] / g["thickness_nm"][big]) > 2.5  # nominal 300/80


def test_misalignment_distribution():
    """Tangential components ~ N(0, sigma): the tilt is Rayleigh distributed with
    E[theta^2] = 2 sigma^2 (so RMS tilt = sqrt(2) sigma)."""
    sigma = 12.0
    gen = SampleGenerator(shape_px=[40, 200, 200], n_grains=600, misalignment_sigma_deg=sigma,
                          alignment_axis=[0, 0, 1], seed=11)
    axes = gen.micro.easy_axes
    theta = np.degrees(np.arccos(np.clip(axes @ [0, 0, 1], -1, 1)))
    assert np.sqrt(np.mean(theta ** 2)) == pytest.approx(np.sqrt(2) * sigma, rel=0.1)
    # the azimuth is uniform: the mean tangential vector is ~0
    assert np.linalg.norm(axes[:, :2].mean(axis=0)) < 0.05


def test_grain_count_from_sizes():
    """Without n_grains the count is sample volume / (pi/4 D^2 t)."""
    p = dict(shape_px=[20, 100, 120], grain_diameter_nm=200.0, grain_thickness_nm=60.0)
    gen = SampleGenerator(p)
    vol = 20 * 10.0 * (100 - 30) * 5.0 * 120 * 5.0
    assert gen.micro.n_grains == round(vol / (np.pi / 4 * 200.0 ** 2 * 60.0))


@pytest.mark.parametrize("bad, fragment", [
    ({"noise_levl": 0.1}, "synth.noise_levl"),
    ({"shape_px": [4, 64]}, "synth.shape_px"),
    ({"gb_thickness_nm": "thin"}, "synth.gb_thickness_nm"),
    ({"gb_thickness_nm": 50.0}, "synth.gb_thickness_nm"),
    ({"alignment_axis": [0, 0, 0]}, "synth.alignment_axis"),
    ({"grain_thickness_nm": 500.0}, "synth.grain_thickness_nm"),
    ({"cap_thickness_nm": 1000.0}, "synth.cap_thickness_nm"),
    ({"n_grains": 0}, "synth.n_grains"),
    ({"n_grains": 100000, "shape_px": [4, 40, 40]}, "smaller than 8 voxels"),
])
def test_bad_parameters_raise_config_error(bad, fragment):
    with pytest.raises(ConfigError) as err:
        make_sample(bad)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg
