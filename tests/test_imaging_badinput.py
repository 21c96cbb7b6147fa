"""Bad input to stages 2-5: one clear line naming the file, non-zero exit, no artefact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from magtwin.cli.main import main
from tests.util import write_ingest

try:
    from magtwin.synth import make_sample
except ImportError:  # pragma: no cover
    from magtwin.synth.sample import make_sample


def _fails(capsys, argv, out, *words):
    rc = main(["-q"] + [str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1, err           # one line, no traceback
    assert str(argv[1]) in err                        # names the file
    for w in words:
        assert w in err, err
    assert not out.exists()
    assert not list(out.parent.glob(out.stem + ".tmp-*"))   # no partial artefact
    return err


@pytest.mark.parametrize("value", [0, 1234])
def test_constant_stack(tmp_path, capsys, value):
    src = write_ingest(tmp_path / "in.h5", np.full((5, 64, 64), value, np.uint16))
    _fails(capsys, ["denoise", src, "-o", tmp_path / "out.h5"], tmp_path / "out.h5", "constant")


def test_single_slice(tmp_path, capsys):
    rng = np.random.default_rng(0)
    src = write_ingest(tmp_path / "in.h5", rng.integers(0, 60000, (1, 64, 64)).astype(np.uint16))
    _fails(capsys, ["denoise", src, "-o", tmp_path / "out.h5"], tmp_path / "out.h5", "1 slice")
    _fails(capsys, ["align", src, "-o", tmp_path / "out.h5"], tmp_path / "out.h5", "1 slice")


def test_drift_beyond_search_range(tmp_path, capsys):
    s = make_sample(seed=31, shape_px=[8, 96, 128])
    stack = s.stack.copy()
    stack[4:] = np.roll(stack[4:], (0, 25), axis=(1, 2))   # a 25 px jump between slices 3 and 4
    src = write_ingest(tmp_path / "in.h5", stack)
    den = tmp_path / "den.h5"
    assert main(["-q", "denoise", str(src), "-o", str(den)]) == 0
    out = tmp_path / "ali.h5"
    _fails(capsys, ["align", den, "-o", out, "--set", "max_shift_px=10"], out, "search range")


def test_segmentation_without_grain_boundaries(tmp_path, capsys):
    # a static, smooth texture with noise: aligns (no drift) but has no GB-line network
    rng = np.random.default_rng(1)
    tex = ndimage.gaussian_filter(rng.normal(0, 1, (96, 96)), 4)
    stack = 20000 + 3000 * tex / tex.std() + rng.normal(0, 300, (6, 96, 96))
    src = write_ingest(tmp_path / "in.h5", stack.astype(np.uint16))
    den, ali, seg = tmp_path / "den.h5", tmp_path / "ali.h5", tmp_path / "seg.h5"
    assert main(["-q", "denoise", str(src), "-o", str(den)]) == 0
    assert main(["-q", "align", str(den), "-o", str(ali), "--set", "cap_rows=null"]) == 0
    _fails(capsys, ["segment", ali, "-o", seg], seg, "no grain-boundary lines")


def test_wrong_stage_and_bad_parameter(tmp_path, capsys):
    rng = np.random.default_rng(2)
    src = write_ingest(tmp_path / "in.h5", rng.integers(0, 60000, (3, 64, 64)).astype(np.uint16))
    out = tmp_path / "out.h5"
    _fails(capsys, ["segment", src, "-o", out], out, "expected 'align'")
    rc = main(["-q", "denoise", str(src), "-o", str(out), "--set", "method=magic"])
    err = capsys.readouterr().err
    assert rc != 0 and "denoise.method" in err and not out.exists()


def test_a_blank_slice_is_bridged_with_a_warning(tmp_path):
    # a user wants to continue past one blank (e.g. beam-off) slice: interpolated shift,
    # a warning in the artefacts, and the grains continue across it
    import h5py

    from magtwin.reconstruct.scoring import match_grains
    s = make_sample(seed=32, shape_px=[12, 128, 160])
    stack = s.stack.copy()
    stack[6] = 0
    src = write_ingest(tmp_path / "in.h5", stack)
    files = [src] + [tmp_path / f"{n}.h5" for n in ("den", "ali", "seg", "gr")]
    for st, a, b in zip(("denoise", "align", "segment", "grains"), files, files[1:]):
        assert main(["-q", st, str(a), "-o", str(b)]) == 0, st
    with h5py.File(files[1], "r") as f:
        assert "blank" in f.attrs["warnings"]
    with h5py.File(files[2], "r") as f:
        assert "6" in f.attrs["warnings"]
        sh = f["shifts_px"][...]
    # the interpolated shift lies between its neighbours' (drift is a smooth random walk)
    assert np.all(np.abs(sh[6] - 0.5 * (sh[5] + sh[7])) < 1.0)
    with h5py.File(files[4], "r") as f:
        m = match_grains(np.delete(s.truth["labels"], 6, 0), np.delete(f["labels"][...], 6, 0), 500)
    assert m["matched_fraction"] >= 0.8
