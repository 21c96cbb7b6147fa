"""Drift correction WITH a cap/fiducial band: automatic detection of the band, and the reported
uncertainty against the true error.

Automatic detection of the cap/fiducial band (align.cap_rows: auto) on stacks where the
destriping leaves the flat cap less alike from slice to slice than on the small test stacks.

On the 100 x 1024 x 1024 benchmark stack (``benchmarks/imaging.py``) the cap was missed: its
bands correlated 0.81-0.88 between slices 50-99 apart and 0.85-0.89 of the neighbouring-slice
value, below the former thresholds (0.8 and 0.9), and the stack was registered without a
reference (1.02 px RMS instead of 0.26 px with the band). Twice the default curtaining on a
512 x 512 stack reproduces that (seeds 1-2: missed or cut short with the former thresholds;
seed 86 here: missed). Seeds 85-87 were not used to set the thresholds.

Uncertainty: every error of a slice's image (noise, curtain residuals, the sample rows in the
band) enters all registrations of that slice alike, so the least-squares residuals cannot see
it; the stage adds each registration's own error (cluster-robust estimate over column blocks,
:func:`magtwin.imaging.drift_model.refine_band`). Tuned on seeds 101-153; the
seeds here (161-164) were not used.
"""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.imaging import align, denoise
from magtwin.synth.sample import SampleGenerator


class LazyDenoisedStack:
    """(z, y, x) stack whose slices are rendered and denoised when read (cap detection reads
    only a handful of them)."""

    def __init__(self, gen: SampleGenerator):
        self.gen, self.shape, self._cache = gen, gen.shape, {}

    def __getitem__(self, key):
        k, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if k not in self._cache:
            self._cache[k] = denoise.process_slice(self.gen.raw_slice(k), dict(denoise.DEFAULTS))[0]
        return self._cache[k][rest] if rest else self._cache[k]


@pytest.mark.parametrize("seed", [85, 86])
def test_cap_is_detected_despite_curtaining_residuals(seed):
    gen = SampleGenerator(seed=seed, shape_px=[100, 512, 512], cap=True, supersample=1, curtaining=0.16)
    cap, source = align._cap_rows(dict(align.DEFAULTS), LazyDenoisedStack(gen))
    assert source == "auto"
    assert cap == pytest.approx(gen.cap_rows, abs=1), cap


def test_no_cap_is_found_in_a_stack_without_one():
    gen = SampleGenerator(seed=87, shape_px=[100, 512, 512], cap=False, supersample=1, curtaining=0.16)
    cap, source = align._cap_rows(dict(align.DEFAULTS), LazyDenoisedStack(gen))
    assert cap is None and source == "auto: none found"


def test_cap_uncertainty_covers_the_true_error():
    # Issue 3: "report its own uncertainty". Pooled over fresh stacks at the default and twice
    # the noise, >= 80 % of the per-axis shifts must lie within 2 sigma (a Gaussian error with
    # the reported sigma: 95 %), and sigma must be a measure of the error, not a blanket
    # (RMS sigma within 3x of the RMS error). Before (least-squares residual sigma only):
    # 25-40 % within 2 sigma, sigma 1/10 of the error.
    # supersample 8: the synthetic image places the straight cap/sample interface - the main
    # feature for dy - to within 1/supersample px (uniform: 1/(8 sqrt 12) = 0.036 px RMS), so
    # the ground truth itself is that exact; at the default 4 (0.072 px) it exceeds the
    # registration error of this band and would be scored as the method's.
    from magtwin.synth.sample import SampleGenerator as Gen

    err, sig = [], []
    for seed, noise in [(161, 0.04), (162, 0.04), (163, 0.08), (164, 0.08)]:
        gen = Gen(seed=seed, shape_px=[30, 64, 256], cap=True, supersample=8, noise_level=noise)
        den = np.stack([denoise.process_slice(gen.raw_slice(k), dict(denoise.DEFAULTS))[0]
                        for k in range(30)])
        p = dict(align.DEFAULTS)
        band = align._registration_band(gen.cap_rows, 64, int(p["cap_margin_px"]))
        r = align.estimate_shifts(den, p, f"seed {seed}", band)
        err.append((r["shifts_px"] - gen.shifts_px)[1:].ravel())
        sig.append(r["uncertainty_px"][1:].ravel())
    err, sig = np.abs(np.concatenate(err)), np.concatenate(sig)
    assert np.all(sig > 0)
    assert np.mean(err <= 2 * sig) >= 0.8, np.mean(err <= 2 * sig)
    ratio = np.sqrt(np.mean(sig ** 2) / np.mean(err ** 2))
    assert 1 / 3 <= ratio <= 3, ratio
    # and the shifts meet issue 3's cap target with a wide margin (0.5 px RMS)
    assert np.sqrt(np.mean(err ** 2) * 2) < 0.25
