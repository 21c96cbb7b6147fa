"""One HDF5 file per stage and sample, written atomically, with provenance.

Layout conventions (all artefacts):

* root attributes ``magtwin_stage`` (str), ``magtwin_schema_version`` (int),
  ``magtwin_version`` (str), ``created_utc`` (ISO 8601), ``parameters_json`` (the stage
  parameters as JSON), ``inputs_json`` (``{path: sha256}`` of every input file);
* image volumes are ``(z, y, x)`` datasets chunked one slice per chunk and gzip-compressed,
  so a stack larger than memory streams slice by slice;
* units are in dataset/attribute names (``voxel_size_nm``, ``field_T``).

The file is written to ``<name>.tmp-<pid>.h5`` beside the target and renamed on success; an
exception (or a kill) never leaves a file under the final name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from magtwin import __version__
from magtwin.errors import ArtefactError, MagtwinError

#: Bumped whenever the layout of any artefact changes incompatibly.
SCHEMA_VERSION = 1

#: Known stages, in pipeline order (used for messages and file names ``NN_stage.h5``).
STAGES = (
    "synth", "ingest", "denoise", "align", "segment", "grains",
    "model", "mesh", "simulate", "analyse", "dynamics", "truth",
)


def file_digest(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file (for a folder: of its sorted file names and contents)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(chunk_bytes), b""):
                h.update(block)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


class ArtefactWriter:
    """Context manager writing one stage artefact atomically.

    Example
    -------
    >>> with ArtefactWriter("results/s/01_ingest.h5", "ingest", params, inputs=[tif]) as w:
    ...     vol = w.create_volume("volume", (nz, ny, nx), np.uint16)
    ...     for k, img in enumerate(slices):
    ...         vol[k] = img
    ...     w.h5.attrs["voxel_size_nm"] = (10.0, 5.0, 5.0)

    Attributes
    ----------
    h5 : h5py.File
        The open temporary file; write any groups/datasets into it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        stage: str,
        parameters: Mapping[str, Any] | None = None,
        inputs: Iterable[str | os.PathLike] = (),
    ):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        self.path = Path(path)
        self.stage = stage
        self.parameters = dict(parameters or {})
        self.inputs = [Path(p) for p in inputs]
        self.tmp_path = self.path.with_name(f"{self.path.stem}.tmp-{os.getpid()}.h5")
        self.h5: h5py.File | None = None

    def __enter__(self) -> "ArtefactWriter":
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MagtwinError(f"cannot create output folder ({exc.strerror})", parent) from None
        if not os.access(parent, os.W_OK):
            raise MagtwinError("output folder is not writable", parent)
        try:
            self.h5 = h5py.File(self.tmp_path, "w", libver="latest")
        except OSError as exc:
            raise MagtwinError(f"cannot write artefact ({exc})", self.path) from None
        a = self.h5.attrs
        a["magtwin_stage"] = self.stage
        a["magtwin_schema_version"] = SCHEMA_VERSION
        a["magtwin_version"] = __version__
        a["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        a["parameters_json"] = json.dumps(_jsonable(self.parameters), sort_keys=True)
        a["inputs_json"] = json.dumps(
            {os.fspath(p): file_digest(p) for p in self.inputs if p.exists()}, sort_keys=True
        )
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.h5 is not None
        try:
            self.h5.attrs["complete"] = exc_type is None
            self.h5.close()
        finally:
            if exc_type is None:
                os.replace(self.tmp_path, self.path)
            else:
                self.tmp_path.unlink(missing_ok=True)
        return False

    # -- helpers -------------------------------------------------------------------------
    def create_volume(
        self, name: str, shape: tuple[int, int, int], dtype, attrs: Mapping[str, Any] | None = None,
        compression_level: int = 4,
    ) -> h5py.Dataset:
        """A ``(z, y, x)`` dataset chunked one slice per chunk, gzip-compressed."""
        assert self.h5 is not None
        nz, ny, nx = (int(s) for s in shape)
        ds = self.h5.create_dataset(
            name, shape=(nz, ny, nx), dtype=dtype, chunks=(1, ny, nx),
            compression="gzip", compression_opts=compression_level, shuffle=True,
        )
        for k, v in (attrs or {}).items():
            ds.attrs[k] = v
        return ds

    def write(self, name: str, data, attrs: Mapping[str, Any] | None = None,
              compress: bool = True) -> h5py.Dataset:
        """Write one array (compressed when large enough to matter)."""
        assert self.h5 is not None
        arr = np.asarray(data)
        kw = {}
        if compress and arr.size >= 4096 and arr.dtype.kind in "biuf":
            kw = dict(compression="gzip", compression_opts=4, shuffle=True)
        ds = self.h5.create_dataset(name, data=arr, **kw)
        for k, v in (attrs or {}).items():
            ds.attrs[k] = v
        return ds

    def write_json(self, name: str, obj: Any) -> None:
        """Store a JSON-serialisable object (tables, reports) as a string attribute on root."""
        assert self.h5 is not None
        self.h5.attrs[name] = json.dumps(_jsonable(obj), sort_keys=True)


def open_artefact(path: str | os.PathLike, stage: str | Iterable[str] | None = None) -> h5py.File:
    """Open an artefact read-only after checking its stage, schema and completeness.

    Parameters
    ----------
    path : path to the ``.h5`` artefact.
    stage : the expected stage name (or several accepted names); ``None`` accepts any.

    Raises
    ------
    ArtefactError
        If the file is missing, not HDF5, of another stage, of another schema version,
        or not marked complete.
    """
    p = Path(path)
    if not p.exists():
        raise ArtefactError("artefact does not exist", p)
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise ArtefactError("not a readable HDF5 file (truncated or corrupt?)", p) from None
    try:
        got = f.attrs.get("magtwin_stage")
        if got is None:
            raise ArtefactError("not a magtwin artefact (no 'magtwin_stage' attribute)", p)
        got = str(got)
        want = (stage,) if isinstance(stage, str) else (tuple(stage) if stage is not None else None)
        if want is not None and got not in want:
            raise ArtefactError(f"is a '{got}' artefact, expected '{'/'.join(want)}'", p)
        ver = int(f.attrs.get("magtwin_schema_version", -1))
        if ver != SCHEMA_VERSION:
            raise ArtefactError(
                f"schema version {ver}, this magtwin reads version {SCHEMA_VERSION}; re-run the stage", p
            )
        if not bool(f.attrs.get("complete", False)):
            raise ArtefactError("artefact is incomplete (its writer did not finish)", p)
    except Exception:
        f.close()
        raise
    return f


def read_json_attr(f: h5py.File, name: str) -> Any:
    """Decode a JSON attribute written by :meth:`ArtefactWriter.write_json`."""
    return json.loads(f.attrs[name])


def parameters_of(f: h5py.File) -> dict:
    """The stage parameters recorded in an artefact's provenance."""
    return json.loads(f.attrs["parameters_json"])
