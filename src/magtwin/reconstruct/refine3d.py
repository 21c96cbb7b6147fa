"""3D refinement of linked grains: re-flood every grain border from the grain cores in 3D.

Linking decides slice by slice, so each slice's segmentation errors stay in the 3D grains: a
piece of a grain cut off in a few slices becomes a small grain of its own or goes to the
wrong neighbour, and a border misplaced in one slice stays misplaced. On long stacks these
errors add up (issue 3: on 60-slice stacks, grains with IoU 0.6-0.8 against a single pure
partner and grains in several pieces were a third of the unmatched ones).

The refinement keeps only the *cores* of the linked grains -- voxels farther than
``core_px`` pixels (in-plane) from any other grain -- and floods the rest again with a 3D
seeded watershed (SimpleITK's morphological watershed from markers, 6-connected) on the GB evidence volume of the segment stage:
a voxel goes to the grain that reaches it over the lowest GB barrier, through its own slice
*or through the neighbouring slices*, which is the information the per-slice segmentation
did not use. Pieces thinner than ``2 core_px`` have no core and are absorbed by the grain
on the other side of their weakest border.

The seeds carry the global grain ids, so slabs of ``slab_slices`` slices (plus
``overlap_slices`` of context on each side, read from the unrefined labels) can be flooded
independently and need no stitching: memory does not grow with the number of slices.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from magtwin.imaging.stackio import progress


def cores(labels: np.ndarray, core_px: int) -> np.ndarray:
    """``labels`` (z, y, x) with every voxel within ``core_px`` px (in-plane, chessboard
    distance, counted from the border pixel itself) of a different grain (label > 0) set to
    0."""
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    # borders between two grains only: the edge of the labelled region (cap, field edge, a
    # strip a drifted slice did not image) is no border to re-place, and a grain cut thin
    # there keeps its core (issue 3: thin grains along the field edge were absorbed)
    dy = (lab[:, 1:] != lab[:, :-1]) & (lab[:, 1:] > 0) & (lab[:, :-1] > 0)
    edge[:, 1:] |= dy
    edge[:, :-1] |= dy
    dx = (lab[:, :, 1:] != lab[:, :, :-1]) & (lab[:, :, 1:] > 0) & (lab[:, :, :-1] > 0)
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    if core_px > 1:
        edge = ndimage.binary_dilation(edge, np.ones((1, 3, 3), bool), iterations=int(core_px) - 1)
    return np.where(edge, 0, lab)


def refine_block(labels: np.ndarray, boundary: np.ndarray, core_px: int,
                 fill: np.ndarray | None = None) -> np.ndarray:
    """Refined labels of a (z, y, x) block: cores of ``labels`` (:func:`cores`) flooded in 3D
    over the GB evidence ``boundary`` (same shape) inside ``labels > 0``. ``fill`` (y, x)
    bool, optional: unlabelled voxels there (pixels a drifted slice did not image) are
    flooded too, after everything else -- from the neighbouring slices that imaged them, or
    from the nearest grain of their own slice. Returns the same dtype as ``labels``; a block
    without any core is returned unchanged."""
    lab = np.asarray(labels)
    seeds = cores(lab, core_px)
    if not seeds.any():
        return lab.copy()
    region = lab > 0
    b = np.asarray(boundary, np.float32)
    # SimpleITK's marker watershed gives the same labels as scikit-image's (checked on a
    # 12 x 1024 x 1024 block) in half the time; it has no mask, so voxels outside the region
    # get a barrier no flood crosses before everything else is flooded, and 0 again after
    elev = np.where(region, b, np.float32(1e30))
    if fill is not None:
        gap = ~region & np.asarray(fill, bool)[None]
        region |= gap
        elev[gap] = np.float32(1e3) + (float(b.max()) if b.size else 0.0)
    out = sitk.GetArrayFromImage(sitk.MorphologicalWatershedFromMarkers(
        sitk.GetImageFromArray(elev), sitk.GetImageFromArray(seeds.astype(np.uint32)),
        markWatershedLine=False, fullyConnected=False))
    out[~region] = 0
    return out.astype(lab.dtype, copy=False)


def refine_volume(vol, boundary, core_px: int = 4, slab_slices: int = 8,
                  overlap_slices: int = 4, fill: np.ndarray | None = None) -> None:
    """:func:`refine_block` over a (z, y, x) label volume ``vol`` (h5py dataset or array),
    **in place**, slab by slab (module docstring). ``boundary``: the GB evidence volume;
    ``fill``: see :func:`refine_block`."""
    nz = vol.shape[0]
    step, ov = max(1, int(slab_slices)), max(0, int(overlap_slices))
    orig: dict[int, np.ndarray] = {}   # unrefined slices still needed as context
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        a, e = max(0, z0 - ov), min(nz, z1 + ov)
        for k in range(a, e):
            if k not in orig:
                orig[k] = np.asarray(vol[k])
        lab = np.stack([orig[k] for k in range(a, e)])
        b = np.stack([np.asarray(boundary[k], np.float32) for k in range(a, e)])
        ref = refine_block(lab, b, core_px, fill)
        for k in range(z0, z1):
            vol[k] = ref[k - a]
        for k in [k for k in orig if k < z1 - ov]:
            del orig[k]
        progress("grains/refine3d", z1 - 1, nz, every=1)
