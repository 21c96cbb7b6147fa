"""Model stage: label volume -> ``06_model.h5`` (fitted convex grains, GB/TJ regions).

Artefact layout (stage ``model``):

* ``/grains/sites_nm`` (G, 3) xyz and ``/grains/weights_nm2`` (G,): the Laguerre tessellation
  in *model* coordinates (after crop and ``scale``), ``/grains/label_id`` (G,) the label each
  cell stands for;
* ``/pieces/``: every convex piece as half-spaces ``n·x <= c`` (``planes`` (P, 4) rows
  ``n_x, n_y, n_z, c``; ``plane_index``/``plane_ptr`` CSR list of (signed) plane rows per
  piece: row ``+k+1`` means ``n·x <= c``, ``-(k+1)`` means ``n·x >= c``), ``region`` and
  ``grain`` per piece;
* root attributes ``regions_json`` (region table, see :mod:`magtwin.model.regions`),
  ``box_lo_nm``/``box_hi_nm``, ``alignment_axis``, ``fit_json`` (voxel accuracy of the
  model's cells; ``voxel_accuracy_fit`` that of the fit when grains were dropped),
  ``cleanup_json`` (see :mod:`magtwin.model.cleanup`: sliver pieces; ``one_sided_gb``
  ``[label a, label b, label of the grain holding the GB]`` next to grains too thin for a
  centred GB shell; ``dropped_grains``: labelled grains too small or too cut by the box even
  for that, with the reason; ``gb_regions_into_junctions``; ``box_wedges``: interfaces that
  met the box below ``box_wedge_min_deg``, folded, see :mod:`magtwin.model.box_wedges`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from magtwin.errors import ArtefactError, ConfigError, InputError
from magtwin.io.artefact import ArtefactWriter, open_artefact, read_json_attr
from magtwin.model.geometry import Geometry, build_geometry
from magtwin.model.laguerre import fit_laguerre, voxel_accuracy

LOG = logging.getLogger(__name__)

#: Defaults of the ``model`` config section (the schema holds the same values).
DEFAULTS: dict[str, Any] = {
    "labels_from": "grains",
    "gb_thickness_nm": 2.0,
    "scale": 1.0,
    "crop_nm": None,
    "alignment_axis": None,
    "tj_thick_threshold_nm": 3.0,
    "min_feature_nm": 0.3,
    "box_wedge_min_deg": 10.0,
    "fit_sample_voxels": 100000,
    "fit_iterations": 80,
    "touch_distance_voxels": 2,
    "seed": 0,
}

LABEL_STAGES = ("grains", "truth")


def read_labels(path: str | os.PathLike, crop_nm: Mapping | None = None) -> tuple[np.ndarray, tuple, dict]:
    """Labels (z, y, x), voxel size (z, y, x) nm and extras (alignment axis, easy axes,
    ``crop_offset_nm``) from a ``grains``/``truth`` artefact or any HDF5 file with a
    ``labels`` dataset and a ``voxel_size_nm`` attribute (on the root or the dataset).
    Only the ``crop_nm`` sub-box is read (big volumes never load whole)."""
    p = Path(path)
    if not p.exists():
        raise InputError("label file does not exist", p)
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise InputError("not a readable HDF5 file", p) from None
    with f:
        if "magtwin_stage" in f.attrs:
            f.close()
            f = open_artefact(p, LABEL_STAGES)
        if "labels" not in f:
            raise InputError("no 'labels' dataset", p)
        ds = f["labels"]
        if ds.dtype.kind not in "iu":
            raise InputError(f"'labels' must be integers, got {ds.dtype}", p)
        vs = ds.attrs.get("voxel_size_nm", f.attrs.get("voxel_size_nm"))
        if vs is None:
            raise InputError("no 'voxel_size_nm' attribute (z, y, x nm)", p)
        vs = tuple(float(v) for v in np.ravel(vs))
        if len(vs) != 3 or min(vs) <= 0:
            raise InputError(f"'voxel_size_nm' must be 3 positive numbers, got {vs}", p)
        if ds.ndim != 3:
            raise InputError(f"'labels' must be a 3D (z, y, x) volume, got shape {ds.shape}", p)
        sl, offset = _crop_slices(ds.shape, vs, crop_nm, p)
        labels = ds[sl]
        if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
            raise InputError("'labels' contains negative values", p)
        extra: dict = {"crop_offset_nm": offset}
        if "alignment_axis" in f.attrs:
            extra["alignment_axis"] = np.asarray(f.attrs["alignment_axis"], float)
        if "easy_axes" in f:
            extra["easy_axes"] = f["easy_axes"][...]
    return labels, vs, extra


def _crop_slices(shape, vs, crop_nm: Mapping | None, source) -> tuple[tuple, np.ndarray]:
    """Index slices (z, y, x) of the whole voxels inside ``crop_nm`` ({x,y,z: [lo, hi]} nm)
    and the xyz nm offset of the cropped origin."""
    sl = []
    offset = np.zeros(3)
    for axis_zyx, name in enumerate("zyx"):
        n = shape[axis_zyx]
        rng = (crop_nm or {}).get(name)
        if rng is None:
            sl.append(slice(0, n))
            continue
        lo, hi = (float(v) for v in rng)
        a = max(0, int(np.floor(lo / vs[axis_zyx] + 1e-9)))
        b = min(n, int(np.ceil(hi / vs[axis_zyx] - 1e-9)))
        if b - a < 2:
            raise ConfigError(f"model.crop_nm.{name} = {list(rng)} leaves fewer than 2 of the {n} voxels "
                              f"({vs[axis_zyx]:g} nm) of {source}")
        sl.append(slice(a, b))
        offset["xyz".index(name)] = a * vs[axis_zyx]
    return tuple(sl), offset


def model_from_labels(labels: np.ndarray, voxel_size_nm, params: Mapping[str, Any], extra: Mapping | None = None,
                      source=None) -> tuple[Geometry, dict, np.ndarray, np.ndarray]:
    """Fit + build the geometry; returns (geometry, fit report, sites, weights) in model nm."""
    prm = {**DEFAULTS, **dict(params or {})}
    extra = dict(extra or {})
    scale = float(prm["scale"])
    if not scale > 0:
        raise ConfigError(f"model.scale must be > 0, got {scale}", source)
    if "crop_offset_nm" in extra:  # already cropped while reading
        offset = np.asarray(extra["crop_offset_nm"], float)
    else:
        sl, offset = _crop_slices(labels.shape, voxel_size_nm, prm.get("crop_nm"), source)
        labels = labels[sl]
    fit = fit_laguerre(labels, voxel_size_nm, source=source, n_sample=int(prm["fit_sample_voxels"]),
                       iterations=int(prm["fit_iterations"]),
                       touch_distance_vox=int(prm["touch_distance_voxels"]), seed=int(prm["seed"]))
    extent = np.array([labels.shape[2] * voxel_size_nm[2], labels.shape[1] * voxel_size_nm[1],
                       labels.shape[0] * voxel_size_nm[0]])
    # power diagrams scale exactly: sites x s, weights x s^2
    sites = fit.sites_nm * scale
    weights = fit.weights_nm2 * scale**2
    axis = prm.get("alignment_axis") or extra.get("alignment_axis")
    axis = np.asarray(axis if axis is not None else (0.0, 0.0, 1.0), float)
    if axis.shape != (3,) or not np.linalg.norm(axis) > 0:
        raise ConfigError(f"model.alignment_axis must be a non-zero (x, y, z) vector, got {axis.tolist()}", source)
    axis = axis / np.linalg.norm(axis)
    geom = build_geometry(sites, weights, fit.grain_ids, np.zeros(3), extent * scale,
                          float(prm["gb_thickness_nm"]), float(prm["min_feature_nm"]),
                          float(prm["tj_thick_threshold_nm"]), axis, source, float(prm["box_wedge_min_deg"]))
    easy = extra.get("easy_axes")
    if easy is not None:
        for r in geom.regions:
            g = r["grains"][0]
            if r["kind"] == "grain" and 0 <= g < len(easy):
                r["easy_axis"] = [float(v) for v in easy[g]]
    report = {
        "voxel_accuracy": fit.accuracy, "voxel_accuracy_centroid_voronoi": fit.accuracy_initial,
        "n_voxels_scored": fit.n_voxels_scored, "n_grains_labels": int(len(fit.grain_ids)),
        "crop_offset_nm": offset.tolist(), "scale": scale, "alignment_axis": axis.tolist(),
    }
    dropped = geom.cleanup["dropped_grains"]
    if dropped:
        # the model's cells are the fit's without the dropped sites: score those
        keep = ~np.isin(fit.grain_ids, [d["grain"] for d in dropped])
        report["voxel_accuracy_fit"] = fit.accuracy
        report["voxel_accuracy"] = voxel_accuracy(labels, voxel_size_nm, fit.sites_nm[keep], fit.weights_nm2[keep],
                                                  fit.grain_ids[keep], seed=int(prm["seed"]))
        LOG.warning("model: %d labelled grain(s) dropped, too small or too cut by the box for a %g nm GB shell even "
                    "with it in their neighbours (their space goes to the neighbours; voxel accuracy %.4f -> %.4f): %s",
                    len(dropped), float(prm["gb_thickness_nm"]), fit.accuracy, report["voxel_accuracy"],
                    ", ".join(f"grain {d['grain']} (cell {d['cell_volume_nm3']:.3g} nm3, core radius "
                              f"{d['core_inner_radius_nm']:.3g} nm)" for d in dropped))
    if geom.cleanup["one_sided_gb"]:
        LOG.info("model: %d GB(s) next to grains too thin for a centred %g nm shell lie entirely in the "
                 "neighbour (grain pair: grain holding the GB): %s", len(geom.cleanup["one_sided_gb"]),
                 float(prm["gb_thickness_nm"]), ", ".join(f"{a}-{b}: {c}" for a, b, c in geom.cleanup["one_sided_gb"]))
    return geom, report, sites, weights


def write_model(path, geom: Geometry, fit_report: dict, sites, weights, params, inputs=()) -> None:
    """Write the ``model`` artefact (see module docstring)."""
    planes = np.column_stack([np.asarray(geom.planes.normals), np.asarray(geom.planes.offsets)])
    ptr, idx = [0], []
    for p in geom.pieces:
        for f in p.poly.faces:
            # faces' side: -1 means the piece is on n·x <= c
            idx.append((f.plane + 1) * (1 if f.side < 0 else -1))
        ptr.append(len(idx))
    with ArtefactWriter(path, "model", params, inputs) as w:
        w.write("grains/sites_nm", np.asarray(sites, float))
        w.write("grains/weights_nm2", np.asarray(weights, float))
        w.write("grains/label_id", np.asarray(geom.grain_ids, np.int64))
        w.write("pieces/planes", planes)
        w.write("pieces/plane_index", np.asarray(idx, np.int64))
        w.write("pieces/plane_ptr", np.asarray(ptr, np.int64))
        w.write("pieces/region", np.array([p.region for p in geom.pieces], np.int32))
        w.write("pieces/grain", np.array([int(geom.grain_ids[p.grain]) for p in geom.pieces], np.int64))
        w.write("pieces/sliver", np.array([p.sliver for p in geom.pieces], bool))
        w.h5.attrs["box_lo_nm"] = geom.box_lo
        w.h5.attrs["box_hi_nm"] = geom.box_hi
        w.h5.attrs["alignment_axis"] = np.asarray(fit_report["alignment_axis"], float)
        w.write_json("regions_json", geom.regions)
        w.write_json("fit_json", fit_report)
        w.write_json("cleanup_json", geom.cleanup)


def run_model(labels_path, out_path, params: Mapping[str, Any] | None = None) -> dict:
    """Model stage: labels file -> ``06_model.h5``. Returns the fit report."""
    prm = {**DEFAULTS, **dict(params or {})}
    labels, vs, extra = read_labels(labels_path, prm.get("crop_nm"))
    geom, report, sites, weights = model_from_labels(labels, vs, prm, extra, source=labels_path)
    write_model(out_path, geom, report, sites, weights, prm, inputs=[labels_path])
    kinds = {k: sum(r["kind"] == k for r in geom.regions) for k in ("grain", "gb", "tj")}
    LOG.info("model: %d grains, %d GB, %d TJ regions; voxel accuracy %.3f", kinds["grain"], kinds["gb"],
             kinds["tj"], report["voxel_accuracy"])
    return {**report, "regions": kinds}


def read_model(path) -> dict:
    """Everything the mesh stage needs from a ``model`` artefact."""
    with open_artefact(path, "model") as f:
        try:
            out = {
                "sites_nm": f["grains/sites_nm"][...], "weights_nm2": f["grains/weights_nm2"][...],
                "label_id": f["grains/label_id"][...], "piece_region": f["pieces/region"][...],
                "box_lo_nm": np.asarray(f.attrs["box_lo_nm"]), "box_hi_nm": np.asarray(f.attrs["box_hi_nm"]),
                "alignment_axis": np.asarray(f.attrs["alignment_axis"]),
                "regions": read_json_attr(f, "regions_json"), "parameters": read_json_attr(f, "parameters_json"),
                "fit": read_json_attr(f, "fit_json"),
            }
        except KeyError as exc:
            raise ArtefactError(f"model artefact lacks {exc}", path) from None
    return out


def rebuild_geometry(model: Mapping, source=None) -> Geometry:
    """The model's pieces, rebuilt deterministically from its sites and parameters."""
    prm = {**DEFAULTS, **model["parameters"]}
    geom = build_geometry(model["sites_nm"], model["weights_nm2"], model["label_id"], model["box_lo_nm"],
                          model["box_hi_nm"], float(prm["gb_thickness_nm"]), float(prm["min_feature_nm"]),
                          float(prm["tj_thick_threshold_nm"]), model["alignment_axis"], source,
                          float(prm["box_wedge_min_deg"]))
    if len(geom.pieces) != len(model["piece_region"]) or any(
            p.region != r for p, r in zip(geom.pieces, model["piece_region"])):
        raise ArtefactError("model pieces could not be rebuilt identically (different magtwin version?); "
                            "re-run the model stage", source)
    geom.regions = model["regions"]
    return geom
