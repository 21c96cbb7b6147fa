"""Linking 2D grain sections into 3D grains over stacks longer than a grain (issue 3).

The ground-truth tests (test_imaging_synthetic.py) use 24 slices, fewer than a grain's extent
along z (300 nm / 10 nm = 30 slices), so almost no grain ends inside their stacks. On the
500 x 1024 x 1024 benchmark stack every grain does, and where one grain ends another one
starts at its place (space-filling grains): overlap alone linked the two into one grain, one
of the reasons that stack missed the issue's target (>= 90 % of truth grains > 500 voxels
matched one-to-one at IoU >= 0.8).
"""

from __future__ import annotations

import numpy as np

from magtwin.reconstruct import grains, zsplit
from magtwin.reconstruct.scoring import match_grains
from magtwin.synth import SampleGenerator


def _link_truth_sections(truth: np.ndarray, max_dip: float | None = None, **kw) -> np.ndarray:
    """3D labels from linking the exact 2D sections of ``truth`` (per slice renumbered) and
    (``max_dip`` not None) cutting the linked grains at the dips of their section area
    (:func:`magtwin.reconstruct.zsplit.split_tracks`)."""
    lab2d = np.zeros(truth.shape, np.int64)
    for z in range(truth.shape[0]):
        ids, inv = np.unique(truth[z], return_inverse=True)
        lab2d[z] = inv.reshape(truth[z].shape) + (ids[0] != 0)
    out = np.zeros(truth.shape, np.int64)
    tracks, track_of = grains.link_sections(lab2d, out, **kw)
    if max_dip is not None:
        zsplit.split_tracks(out, track_of, tracks, None, None, min_step=None, max_dip=max_dip)
    lab = np.zeros(truth.shape, np.int64)
    for z in range(truth.shape[0]):
        lut = np.array([tracks.find(int(t)) + 1 for t in track_of[z]])
        lut[0] = 0
        lab[z] = lut[out[z]]
    return lab


def test_linking_exact_sections_keeps_grains_that_end_and_start_apart():
    # grains.regrowth (the convexity rule of link_sections; off by default, see there).
    # 60 slices (two grain extents) of held-out seeds 55-62 (the rule's parameters were set
    # beforehand; its effect was looked at on seeds 41-46): with exact 2D sections, linking
    # alone must leave most of the 10 % budget to the 2D segmentation. Measured:
    # 97.0 % matched with the area rule, 92.9 % without it (overlap alone).
    n_truth = n_matched = 0
    for seed in range(55, 63):
        gen = SampleGenerator(None, seed=seed, shape_px=[60, 128, 160], noise_level=0.0)
        truth = np.stack([gen.truth_slice(k)[0] for k in range(60)])
        m = match_grains(truth, _link_truth_sections(truth, regrowth=0.15), min_voxels=500,
                         min_iou=0.8)
        n_truth += m["n_truth"]
        n_matched += m["n_matched"]
    assert n_truth >= 300
    assert n_matched / n_truth >= 0.95


def test_weak_borders_do_not_join_grains_that_meet_end_to_end():
    # grains 1 | 2 side by side with no GB evidence on their border (b = 0) in every slice
    # they share: joined when they coexist (a lengthwise over-segmentation), not when one
    # ends where the other starts (slices 0-9 and 8-17: 2 shared)
    lab = np.zeros((20, 30), np.int64)
    lab[:, :15], lab[:, 15:] = 1, 2
    b = np.ones(lab.shape, np.float32)
    b[:, 13:17] = 0.0
    for first, last, joined in (([-1, 0, 0], [-1, 9, 9], True), ([-1, 0, 8], [-1, 9, 17], False)):
        wb = grains.WeakBorders(2, np.array(last), threshold=0.3, min_border_px=50,
                                first=np.array(first), min_coexist=0.5)
        for _ in range(3):
            wb.add(lab, b)
        wb.close(np.inf)
        assert (wb.merges() == {2: 1}) is joined
