"""Drift correction WITHOUT a cap/fiducial region (issue 3: "state what the method reaches and
keep it from growing with the number of slices", "report its own uncertainty").

What an image-only method can reach: the synthetic drift is a random walk (step 0.3 px per
axis), and without a fixed reference its slowest component competes with the motion of
inclined grain boundaries, whose bias is stationary along the stack. The minimum-variance
estimate then has an error whose variance grows linearly with the number of slices at
long lengths, at the rate ``S_d S_b / (S_d + S_b)`` (drift-step variance ``S_d``, bias
spectral density at zero frequency ``S_b``): the RMS error may grow like ``sqrt(n)``, not
faster. A random walk of the structural bias itself (0.3-0.45 px per pair along x,
correlated over 5-10 slices) is what the previous method did: 6-10 px over 90 slices of
96 x 128 px, 2-4 px over 30 (measured on seeds 1-3).

The method (patch registration + bias-aware random-walk model, :mod:`magtwin.imaging.
drift_model`) was tuned on seeds 1-3; the seeds here (61-63) were not used. Measured while
tuning (seeds 1-3, 96 x 128 px): RMS 1.0-1.8 px over 30 slices, 1.3-3.0 px over 90 slices;
pooled 89 % of the per-axis shifts within 2 sigma.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.linalg import toeplitz

from magtwin.cli.main import main
from magtwin.imaging import align, denoise, drift_model
from magtwin.io.artefact import read_json_attr
from magtwin.reconstruct.scoring import shift_rms_error
from magtwin.synth.artefacts import poisson_gaussian
from magtwin.synth.sample import SampleGenerator, make_sample
from tests.util import write_ingest

SHAPE_LONG = [90, 96, 128]
N_SHORT = 30
SEEDS = [(61, 0.04), (62, 0.04), (63, 0.08)]   # (seed, noise_level): default and twice the noise


# ---------------------------------------------------------------------------------------
# the model on arrays (analytic cases)
# ---------------------------------------------------------------------------------------
def test_patch_shifts_recover_a_pure_translation_without_shrinkage():
    # the same slice of a fresh sample rendered at two positions of the field of view (a pure
    # translation, independent noise, denoised like the stage's input): the patch shifts must
    # follow the translation with slope 1 along both axes. Windowed cross-correlation peaks
    # of 4 x 4 patches gave slope 0.74 along x (the window pulls the peak towards 0).
    gen = SampleGenerator(seed=71, shape_px=[30, 96, 128], cap=False, drift_step_px=0.0, supersample=2)
    rng = np.random.default_rng(7)
    p = gen.params
    truth, got = [], []
    for k in range(2, 30, 3):
        t = tuple(rng.uniform(-2.0, 2.0, 2))
        pair = []
        for origin in [(0.0, 0.0), t]:
            img = poisson_gaussian(gen.renderer.ideal_window(k, origin, gen.shape[1:]), p["noise_level"],
                                   p["noise_poisson_fraction"], p["grain_intensity"], rng)
            pair.append(denoise.process_slice(img.astype(np.float32), dict(denoise.DEFAULTS))[0])
        ref, mov = pair
        whole = align.register(align.spectrum(ref), align.spectrum(mov), 20)
        ps = drift_model.register_patches(ref, mov, whole, (4, 4))
        truth.append(t)
        got.append(drift_model.robust_patch_mean(ps)[0])
    truth, got = np.array(truth), np.array(got)
    for ax in range(2):
        slope = np.polyfit(truth[:, ax], got[:, ax], 1)[0]
        assert slope == pytest.approx(1.0, abs=0.05), ("yx"[ax], slope)
    # one pair: the mean of 16 patch shifts, each off by 0.1 (y) to 0.5 px (x) rms
    assert np.abs(got - truth).max() < 0.5, got - truth


def test_shifted_patches_equal_a_cubic_spline_shift_of_the_image():
    from scipy import ndimage
    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.normal(size=(80, 90)), 2)
    t = np.array([[0.3, -1.4], [-2.45, 0.1]])
    got = drift_model.shifted_patches(img, [20], [20, 50], 30, 25, t)
    want = np.stack([ndimage.shift(img, ti, order=3, mode="nearest")[20:50, x:x + 25]
                     for ti, x in zip(t, [20, 50])])
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_wiener_shifts_match_the_closed_form_for_white_bias():
    # white drift increments (variance a) plus white bias (variance c): the minimum-variance
    # estimate of each increment is a / (a + c) * m, and the posterior variance of the sum of
    # k increments is k * a * c / (a + c) (independent scalar Gaussian updates).
    a, c = 0.09, 0.16
    m = np.random.default_rng(1).normal(0, 0.5, 40)
    s, sig = drift_model.wiener_shifts(m, np.array([c, 0.0, 0.0]), a, n_uncertainty=100)
    np.testing.assert_allclose(s, np.r_[0, np.cumsum(a / (a + c) * m)], atol=1e-12)
    np.testing.assert_allclose(sig ** 2, np.arange(41) * a * c / (a + c), rtol=1e-9)
    # no bias: the measured increments are the drift, with no uncertainty
    s0, sig0 = drift_model.wiener_shifts(m, np.zeros(3), a)
    np.testing.assert_allclose(s0, np.r_[0, np.cumsum(m)], atol=1e-12)
    assert np.abs(sig0).max() < 1e-6


def test_bias_autocovariance_and_drift_step_recover_a_known_model():
    # P independent patches whose structural motion is an AR(1) process per patch (std su,
    # lag correlation rho), plus a common random-walk drift of step sd: the bias of the patch
    # mean has autocovariance su^2 rho^l / P, and the step variance follows from the increments.
    rng = np.random.default_rng(2)
    K, P, su, rho, sd = 3000, 16, 0.8, 0.7, 0.3
    e = rng.normal(0, su * np.sqrt(1 - rho ** 2), (K, P, 2))
    u = np.empty_like(e)
    u[0] = rng.normal(0, su, (P, 2))
    for k in range(1, K):
        u[k] = rho * u[k - 1] + e[k]
    ps = rng.normal(0, sd, (K, 1, 2)) + u
    mean, ok = drift_model.robust_patch_mean(ps[0], clip_px=np.inf)
    assert ok.all()
    m = ps.mean(axis=1)
    cb = drift_model.bias_autocovariance(ps, np.ones_like(ps, bool), m, 4)
    want = su ** 2 * rho ** np.arange(5) / P
    np.testing.assert_allclose(cb, np.stack([want, want], 1), rtol=0.15, atol=0.004)
    sd2 = drift_model.drift_step_variance(m[:, 0], drift_model._tapered(
        drift_model.bias_autocovariance(ps, np.ones_like(ps, bool), m, 30))[:, 0])
    assert sd2 == pytest.approx(sd ** 2, rel=0.2)
    # drift and uncertainty on the same model: errors within 2 sigma for most slices
    r = drift_model.drift_without_reference(ps[:400], max_lag=16)
    truth = np.vstack([np.zeros(2), np.cumsum(ps[:400].mean(1) - u[:400].mean(1), 0)])
    z = np.abs(r["shifts_px"] - truth)[1:] / r["uncertainty_px"][1:]
    assert np.mean(z <= 2) >= 0.8


def test_a_steady_drift_is_kept_and_a_random_walk_is_not_taken_for_one():
    # patch shifts = common drift + per-patch AR(1) structural motion (as in the test above).
    # A steady drift of 0.3 px/slice along x on top of the random walk must come through
    # whole (drift_rate_sigma_px auto); the damped model (0) loses most of it; without a
    # steady part, auto must not invent one (mean over 20 stacks no worse than with 0).
    def stack(seed, rate):
        rng = np.random.default_rng(seed)
        K, P, su, rho, sd = 120, 16, 1.4, 0.7, 0.3
        u = np.empty((K, P, 2))
        u[0] = rng.normal(0, su, (P, 2))
        for k in range(1, K):
            u[k] = rho * u[k - 1] + rng.normal(0, su * np.sqrt(1 - rho ** 2), (P, 2))
        d = rng.normal(0, sd, (K, 2)) + np.array([0.0, rate])
        return d[:, None, :] + u, np.vstack([np.zeros(2), np.cumsum(d, 0)])

    def rms(r, truth):
        return float(np.sqrt(((r["shifts_px"] - truth) ** 2).sum(1).mean()))

    kept, damped, detected, false_alarms, auto_err, zero_err = [], [], 0, 0, [], []
    for seed in range(300, 310):
        ps, truth = stack(seed, 0.3)
        r = drift_model.drift_without_reference(ps, 16, "auto")
        detected += r["drift_rate_sigma_px"][1] > 0
        kept.append(rms(r, truth))
        damped.append(rms(drift_model.drift_without_reference(ps, 16, 0.0), truth))
        ps, truth = stack(seed + 100, 0.0)
        r = drift_model.drift_without_reference(ps, 16, "auto")
        false_alarms += int((r["drift_rate_sigma_px"] > 0).sum())
        auto_err.append(rms(r, truth))
        zero_err.append(rms(drift_model.drift_without_reference(ps, 16, 0.0), truth))
    # 36 px of steady drift over the stack: found in most stacks, and then the error is the
    # bias's; damped, a large part of the drift is lost (measured on 100 such stacks: 91 %
    # detected; 2.5 % of the random-walk axes fire)
    assert detected >= 7, detected
    assert np.mean(kept) < 0.5 * np.mean(damped), (np.mean(kept), np.mean(damped))
    assert false_alarms <= 2, false_alarms
    assert np.mean(auto_err) <= 1.1 * np.mean(zero_err), (np.mean(auto_err), np.mean(zero_err))


def test_missing_patches_are_not_averaged():
    ps = np.array([[0.1, 0.2], [0.3, 0.2], [np.nan, np.nan], [9.0, 0.2]])
    mean, ok = drift_model.robust_patch_mean(ps, clip_px=3.0)
    np.testing.assert_allclose(mean, [0.2, 0.2])
    assert ok[:, 0].tolist() == [True, True, False, False]


# ---------------------------------------------------------------------------------------
# the stage on fresh synthetic stacks without a cap
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per seed: truth shifts, the stage's shifts/uncertainty/quality over 90 slices, and the
    library's shifts/uncertainty for a 30-slice stack (the first 30 denoised slices)."""
    out = []
    for seed, noise in SEEDS:
        # supersample 2 (partial-volume rendering of the thin GB phase) instead of 4 keeps the
        # three 90-slice samples within the test budget (3x faster synth)
        s = make_sample(seed=seed, shape_px=SHAPE_LONG, cap=False, noise_level=noise, supersample=2)
        d = tmp_path_factory.mktemp(f"nocap{seed}")
        ing, den, ali = write_ingest(d / "01.h5", s.stack, s.voxel_size_nm), d / "02.h5", d / "03.h5"
        assert main(["-q", "denoise", str(ing), "-o", str(den)]) == 0
        assert main(["-q", "align", str(den), "-o", str(ali)]) == 0
        with h5py.File(ali, "r") as f:
            long_ = (f["shifts_px"][...], f["uncertainty_px"][...], read_json_attr(f, "quality_json"),
                     f["registration/patch_shifts_px"].shape)
        with h5py.File(den, "r") as f:
            r = align.estimate_shifts(f["volume"][:N_SHORT], dict(align.DEFAULTS), den, None)
        out.append({"truth": s.truth["shifts_px"], "long": long_,
                    "short": (r["shifts_px"], r["uncertainty_px"])})
    return out


def _rms(shifts, truth):
    return shift_rms_error(shifts, truth[:len(shifts)])


def test_stage_reports_the_model_without_cap(runs):
    shifts, sigma, q, patch_shape = runs[0]["long"]
    assert q["registration_region"].startswith("whole slice")
    assert patch_shape == (SHAPE_LONG[0] - 1, 16, 2)
    assert sigma.shape == shifts.shape and (sigma[0] == 0).all() and (sigma[1:] > 0).all()
    assert q["uncertainty_rms_px"] > 0 and q["uncertainty_max_px"] >= q["uncertainty_rms_px"]
    # the estimated random-walk step is the synthetic one (0.3 px per axis) to within the
    # spread of a 90-step sample and the bias
    assert np.all(np.abs(np.asarray(q["drift_step_px"]) - 0.3) < 0.15), q["drift_step_px"]
    assert len(q["bias_step_px"]) == 2


def test_error_stays_within_what_an_image_only_method_can_reach(runs):
    # absolute bound per stack, 90 slices: 4 px (measured while tuning: 1.3-3.0 px; the
    # previous method 6-10 px); 30 slices: 3 px (tuning: 1.0-1.8 px; previous 1.9-4.1 px)
    for r in runs:
        assert _rms(r["long"][0], r["truth"]) <= 4.0
        assert _rms(r["short"][0], r["truth"]) <= 3.0
    # growth: over the seeds, tripling the stack may cost at most the sqrt(n) growth of a
    # stationary error rate (sqrt(3)); a random walk of the bias grows faster (previous
    # method: x2.8 from 30 to 90 slices on seeds 1-3)
    short = np.mean([_rms(r["short"][0], r["truth"]) for r in runs])
    long_ = np.mean([_rms(r["long"][0], r["truth"]) for r in runs])
    assert long_ <= np.sqrt(3.0) * short, (short, long_)


def test_uncertainty_covers_the_true_error(runs):
    # >= 80 % of the per-axis slice shifts within 2 sigma, pooled over seeds and both lengths
    z = []
    for r in runs:
        for shifts, sigma in (r["long"][:2], r["short"]):
            err = np.abs(shifts - r["truth"][:len(shifts)])[1:]
            z.append((err / sigma[1:]).ravel())
    z = np.concatenate(z)
    assert np.mean(z <= 2.0) >= 0.8, np.mean(z <= 2.0)
