"""Automatic detection of the cap/fiducial band (align.cap_rows: auto) on stacks where the
destriping leaves the flat cap less alike from slice to slice than on the small test stacks.

On the 100 x 1024 x 1024 benchmark stack (``benchmarks/imaging.py``) the cap was missed: its
bands correlated 0.81-0.88 between slices 50-99 apart and 0.85-0.89 of the neighbouring-slice
value, below the former thresholds (0.8 and 0.9), and the stack was registered without a
reference (1.02 px RMS instead of 0.26 px with the band). Twice the default curtaining on a
512 x 512 stack reproduces that (seeds 1-2: missed or cut short with the former thresholds;
seed 86 here: missed). Seeds 85-87 were not used to set the thresholds.
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
