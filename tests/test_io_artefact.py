"""The HDF5 artefact store: atomic writes, provenance, refusal of wrong/incomplete files."""

import json
import os

import h5py
import numpy as np
import pytest

from magtwin import __version__
from magtwin.errors import ArtefactError, MagtwinError
from magtwin.io.artefact import SCHEMA_VERSION, ArtefactWriter, file_digest, open_artefact


def test_round_trip_with_provenance(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"abc")
    out = tmp_path / "s" / "01_ingest.h5"
    with ArtefactWriter(out, "ingest", {"crop": [1, 2], "x": np.float64(2.5)}, inputs=[src]) as w:
        vol = w.create_volume("volume", (3, 4, 5), np.uint16)
        for k in range(3):
            vol[k] = k
    with open_artefact(out, "ingest") as f:
        assert f["volume"].chunks == (1, 4, 5)
        assert f["volume"].compression == "gzip"
        assert np.all(f["volume"][2] == 2)
        assert f.attrs["magtwin_version"] == __version__
        assert f.attrs["magtwin_schema_version"] == SCHEMA_VERSION
        assert json.loads(f.attrs["parameters_json"]) == {"crop": [1, 2], "x": 2.5}
        # SHA-256 of b"abc" (FIPS 180-2, appendix B.1)
        digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        assert json.loads(f.attrs["inputs_json"]) == {str(src): digest}
    assert file_digest(src) == digest


def test_exception_leaves_nothing(tmp_path):
    out = tmp_path / "02_denoise.h5"
    with pytest.raises(RuntimeError):
        with ArtefactWriter(out, "denoise") as w:
            w.write("a", np.arange(10))
            raise RuntimeError("killed half-way")
    assert list(tmp_path.iterdir()) == []


def test_temporary_name_until_complete(tmp_path):
    out = tmp_path / "03_align.h5"
    with ArtefactWriter(out, "align") as w:
        assert not out.exists()
        assert w.tmp_path.exists() and w.tmp_path.parent == out.parent
    assert out.exists() and not w.tmp_path.exists()


def test_reader_refuses_wrong_stage(tmp_path):
    out = tmp_path / "a.h5"
    with ArtefactWriter(out, "ingest"):
        pass
    with pytest.raises(ArtefactError, match="is a 'ingest' artefact, expected 'mesh'"):
        open_artefact(out, "mesh")


def test_reader_refuses_other_schema_and_foreign_and_incomplete(tmp_path):
    out = tmp_path / "a.h5"
    with ArtefactWriter(out, "ingest"):
        pass
    with h5py.File(out, "a") as f:
        f.attrs["magtwin_schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ArtefactError, match="schema version"):
        open_artefact(out, "ingest")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(ArtefactError, match="not a magtwin artefact"):
        open_artefact(foreign)
    with h5py.File(out, "a") as f:
        f.attrs["magtwin_schema_version"] = SCHEMA_VERSION
        f.attrs["complete"] = False
    with pytest.raises(ArtefactError, match="incomplete"):
        open_artefact(out)


def test_reader_refuses_truncated_file(tmp_path):
    out = tmp_path / "a.h5"
    with ArtefactWriter(out, "ingest") as w:
        w.write("big", np.random.default_rng(0).random(100_000))
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtefactError, match="truncated or corrupt"):
        open_artefact(out)


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(MagtwinError, match="cannot create output folder"):
        with ArtefactWriter(blocker / "sub" / "x.h5", "ingest"):
            pass
