"""Write a synthetic sample: ImageJ multi-page TIFF (with voxel size) + ``truth.h5`` artefact.

Both files are written atomically (temporary name, then rename): a failed or killed run leaves
no file under the final name. ``truth.h5`` layout (stage ``truth``):

* volumes (z, y, x), one chunk per slice, gzip: ``labels`` uint32, ``gb_mask``, ``tj_mask`` bool;
* ``shifts_px`` (z, 2) float64 (dy, dx); ``easy_axes`` (n+1, 3) (x, y, z), row = grain id;
  ``seeds_nm`` (n+1, 3); ``laguerre_weights_nm2`` (n+1,); ``metric`` (3, 3);
* group ``grain_table``: one dataset per column (``id``, ``seed_nm``, ``centroid_nm``,
  ``voxel_count``, ``volume_nm3``, ``diameter_nm``, ``thickness_nm``, ``laguerre_weight_nm2``,
  ``brightness``), row i = grain id i + 1;
* root attributes ``voxel_size_nm`` (z, y, x), ``alignment_axis`` (x, y, z), ``cap_rows``
  (start, stop; ``[-1, -1]`` = no cap), ``n_grains``, ``seed``, ``shape_px``; the resolved
  parameters are in the provenance attribute ``parameters_json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import tifffile

from magtwin.errors import MagtwinError
from magtwin.io.artefact import ArtefactWriter
from magtwin.synth.sample import SampleGenerator, SyntheticSample

log = logging.getLogger(__name__)


def _tiff_kwargs(voxel_size_nm) -> dict[str, Any]:
    vz, vy, vx = (float(v) for v in voxel_size_nm)
    return dict(imagej=True, resolution=(1.0 / vx, 1.0 / vy),
                metadata={"spacing": vz, "unit": "nm", "axes": "ZYX"})


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")


def _check_out_dir(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MagtwinError(f"cannot create output folder ({exc.strerror})", path.parent) from None
    if not os.access(path.parent, os.W_OK):
        raise MagtwinError("output folder is not writable", path.parent)


def _write_tiff(path: Path, pages: Iterable[np.ndarray], shape, voxel_size_nm) -> None:
    """Stream ``pages`` (uint16 (y, x)) into an ImageJ TIFF at ``path``, atomically."""
    _check_out_dir(path)
    tmp = _tmp_name(path)
    try:
        try:
            tw = tifffile.TiffWriter(tmp, imagej=True)
        except OSError as exc:
            raise MagtwinError(f"cannot write the TIFF stack ({exc.strerror or exc})", path) from None
        with tw:
            tw.write(iter(pages), shape=tuple(int(s) for s in shape), dtype=np.uint16,
                     **{k: v for k, v in _tiff_kwargs(voxel_size_nm).items() if k != "imagej"})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_truth_tables(w: ArtefactWriter, truth: Mapping[str, Any], voxel_size_nm, shape) -> None:
    for name in ("shifts_px", "easy_axes", "seeds_nm", "laguerre_weights_nm2", "metric"):
        w.write(name, np.asarray(truth[name], dtype=np.float64))
    g = w.h5.create_group("grain_table")
    for col, values in truth["grain_table"].items():
        g.create_dataset(col, data=np.asarray(values))
    a = w.h5.attrs
    a["voxel_size_nm"] = np.asarray(voxel_size_nm, np.float64)
    a["alignment_axis"] = np.asarray(truth["alignment_axis"], np.float64)
    a["cap_rows"] = np.asarray(truth["cap_rows"] if truth["cap_rows"] is not None else (-1, -1), np.int64)
    a["n_grains"] = int(len(truth["grain_table"]["id"]))
    a["seed"] = int(truth["seed"])
    a["shape_px"] = np.asarray(shape, np.int64)


def write_sample(sample: SyntheticSample, tiff_path, truth_path, params: Mapping[str, Any] | None = None) -> None:
    """Write an in-memory sample: ``tiff_path`` (ImageJ TIFF, voxel size in its metadata) and
    ``truth_path`` (``truth`` artefact, see module docstring), both atomically."""
    tiff_path, truth_path = Path(tiff_path), Path(truth_path)
    params = dict(params if params is not None else sample.params)
    shape = sample.stack.shape
    with ArtefactWriter(truth_path, "truth", params) as w:
        for name in ("labels", "gb_mask", "tj_mask"):
            arr = sample.truth[name]
            ds = w.create_volume(name, shape, arr.dtype)
            for k in range(shape[0]):
                ds[k] = arr[k]
        _write_truth_tables(w, sample.truth, sample.voxel_size_nm, shape)
        _write_tiff(tiff_path, (sample.stack[k] for k in range(shape[0])), shape, sample.voxel_size_nm)


def generate_files(params: Mapping[str, Any] | None, tiff_path, truth_path, source: str | None = None,
                   **overrides) -> dict[str, Any]:
    """Generate a sample slice by slice straight into ``tiff_path`` and ``truth_path``.

    Memory stays at a few slices whatever the stack size. Returns a small summary
    (``n_grains``, ``shape_px``, ``shifts_px`` of the last slice).
    """
    tiff_path, truth_path = Path(tiff_path), Path(truth_path)
    gen = SampleGenerator(params, source=source, **overrides)
    for path in (tiff_path, truth_path):  # fail before the (possibly long) rendering
        _check_out_dir(path)
    nz, ny, nx = shape = gen.shape
    mom = gen.new_moments()
    with ArtefactWriter(truth_path, "truth", gen.params) as w:
        vols = {name: w.create_volume(name, shape, dt)
                for name, dt in (("labels", np.uint32), ("gb_mask", bool), ("tj_mask", bool))}

        def pages():
            for k, raw, lab, gb, tj in gen.slices():
                vols["labels"][k], vols["gb_mask"][k], vols["tj_mask"][k] = lab, gb, tj
                gen.accumulate(mom, k, lab)
                if k % max(1, nz // 10) == 0 or k == nz - 1:
                    log.info("synth: slice %d/%d", k + 1, nz)
                yield raw

        try:
            _write_tiff(tiff_path, pages(), shape, gen.voxel)
            _write_truth_tables(w, gen.truth_arrays(mom), gen.voxel, shape)
        except BaseException:
            tiff_path.unlink(missing_ok=True)
            raise
    return {"n_grains": gen.micro.n_grains, "shape_px": list(shape),
            "final_shift_px": gen.shifts_px[-1].tolist()}
