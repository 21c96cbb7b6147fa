"""Units of the small-grain work of issue 3: the line evidence that decides the per-slice
merging (segment) and the bright-sheet cut along z (zsplit)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from magtwin.reconstruct import segment, zsplit


def _grid(spacing_px: int, shape=(240, 240)) -> tuple[np.ndarray, np.ndarray]:
    """Bright 1-px lines every ``spacing_px`` rows and columns blurred by a 0.7 px PSF (the
    synthetic sample's), and the line pixels."""
    lines = np.zeros(shape, bool)
    lines[spacing_px // 2::spacing_px] = True
    lines[:, spacing_px // 2::spacing_px] = True
    return ndimage.gaussian_filter(lines.astype(np.float32), 0.7), lines


def test_line_evidence_scale_does_not_depend_on_the_cell_size():
    # The merge threshold is one number for every grain size, so the line evidence of a GB
    # line must not depend on how dense the GB network is. A grid of equal lines, cells of
    # 40 px and of 12 px (the sections of 300 x 80 and 200 x 60 nm platelets at 5 nm/px):
    # P99 of the ridge response lies on the line centres for both (lines cover 5 % and 16 %
    # of the pixels), so the evidence on a line is ~1 for both; the P95 scale of ``b`` lies
    # on the flanks of the sparse lines and on the centres of the dense ones.
    mask = np.ones((240, 240), bool)
    on_line = {}
    for spacing in (40, 12):
        img, lines = _grid(spacing)
        b, _, line = segment.slice_evidence(img, mask, 0.8, 0.0)
        on_line[spacing] = (np.median(line[lines]), np.median(b[lines]))
    (l40, b40), (l12, b12) = on_line[40], on_line[12]
    assert abs(l40 / l12 - 1) < 0.15
    assert b40 / b12 > 1.3      # the P95 scale would need another threshold per grain size


def test_segment_boundary_merges_on_the_line_evidence_when_given():
    # two regions split by a watershed line where nothing is drawn: ``b`` claims a border
    # (a gradient term would), the line evidence has none -> merged only when it decides
    b = np.zeros((40, 60), np.float32)
    b[:, 29:31] = 1.0
    line = np.zeros_like(b)
    mask = np.ones(b.shape, bool)
    assert segment.segment_boundary(b, mask, merge_threshold=0.5).max() == 2
    assert segment.segment_boundary(b, mask, merge_threshold=0.5, line=line).max() == 1


def test_sheet_cut_at_a_brightness_peak_inside_a_grain_not_at_its_end():
    flat = np.full(21, 500.0)
    level = np.r_[np.full(10, -0.2), 0.6, np.full(10, -0.3)]
    # a slice that cuts a GB face parallel to the slices: the peak starts the second piece
    assert zsplit.sheet_cuts(level, flat, min_sheet=0.5) == [10]
    # a peak below min_sheet above either side: no cut
    assert zsplit.sheet_cuts(np.r_[np.full(10, -0.2), 0.2, np.full(10, -0.3)], flat, 0.5) == []
    # the same peak where the grain's section is small (its end, GB halo): no cut
    area = flat.copy()
    area[10] = 100.0
    assert zsplit.sheet_cuts(level, area, min_sheet=0.5) == []
    # NaN levels (sections too small to judge) are left out of the side medians
    lv = level.copy()
    lv[[8, 12]] = np.nan
    assert zsplit.sheet_cuts(lv, flat, min_sheet=0.5) == [10]
