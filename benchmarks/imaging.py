"""Benchmark of the tomography stages (denoise, align, segment, grains) and a side-by-side
comparison with PyStack3D (registration and stripe removal) on the same synthetic stack.

    python benchmarks/imaging.py --quick          # 40 x 256 x 256, a few minutes
    nice -n 5 python benchmarks/imaging.py        # 500 x 1024 x 1024 (issue 3 size), resumable
    python benchmarks/imaging.py --shape 100,512,512 --no-peer
    python benchmarks/imaging.py --redo peer      # only redo the PyStack3D comparison

Resumable: the stack and every stage's output live in a work folder keyed by shape, seed,
render scale and supersampling (default
``/tmp/magtwin-imaging-bench/<Z>x<Y>x<X>_seed<S>_r<scale>_ss<N>``), with ``state.json``
recording each finished step (generation, ground truth, each stage on the whole and on the
short stack, scores, the peer comparison). A rerun skips finished steps, so an interrupted
run continues where it stopped and the stack is generated once; ``--redo STEP,...``
(``generate``, ``denoise``, ``align``, ``segment``, ``grains``, ``peer``; a stage also
redoes the stages after it) or ``--fresh`` repeat steps.

Reports, per stage, throughput (slices/s), process CPU seconds per slice (user + system of
the stage process and its workers: disturbed far less than wall time by other load) and peak
resident memory (each stage runs in its own process, RSS polled every 200 ms) on the whole
stack and on its first ``--short`` slices (default: a fifth; half with --quick): peak memory
must not grow with the number of slices.
Scores the grains stage against the stack's ground truth (``truth.h5``, labels on the
output grid, streamed) with the tests' function (``reconstruct.scoring.match_grains``):
fraction of truth grains > 500 voxels matched one-to-one at IoU >= 0.8, spurious fraction
(issue 3 targets: >= 90 %, <= 5 %), and the grain-count ratio.
Side by side with PyStack3D, in the same run and on the same raw slices:

* registration, like for like: consecutive slice pairs, the same region (the align stage's
  registration band: cap + sample rows), cumulated into shifts -- magtwin's phase
  correlation (``align.spectrum`` / ``align.register``) versus pystackreg translation
  (PyStack3D's registration); time ratio and drift RMS error against the known shifts. The
  align stage's own estimate (consecutive pair + slice-0 anchor per slice) is reported too;
* stripe removal: ``destripe.remove_stripes`` with the denoise stage's defaults versus
  pyvsnr VSNR (PyStack3D's destriping); time ratio, stripe power after removal (with the
  value of the same noisy slices rendered without curtains: the ideal), and the curtain
  residual on a noise-free pair (std(out - clean) / std(in - clean), affine fit) and on the
  noisy slices (removed pattern against the true curtains, :func:`noisy_residual`).

Stacks are rendered by a streamed generator (:class:`FastStack`): the synthetic sample's
noise-free scene (``magtwin.synth`` renderer), then curtaining, shading, slice brightness and
Poisson-Gaussian noise -- the same artefacts as ``magtwin.synth`` -- slice by slice, with the
ground-truth labels on the same grid. ``--render-scale 2`` renders the scene at half
resolution (10 nm pixels) and upsamples it to 5 nm (1.1 instead of 2.4 CPU s per 1024 x 1024
slice), but its GB lines come out blurred and about half as contrasted as a 5 nm
acquisition's (a 3 nm GB covers 30 % of a 10 nm pixel, 60 % of a 5 nm one): on 60 x 1024 x
1024 (seed 7) the grains stage matched 51 % of the truth grains there against 83 % on the
full-resolution render (benchmarks/out/imaging_60x1024x1024*.json), so it is no longer the
default (issue 3: it was, with thin phases sampled at pixel centres only, which aliased the
GB lines into dots and bars and made 5x too many grains).
PyStack3D needs numpy>=2, so it runs in its own venv, benchmarks/.venv-peers (created on
first use with `pip install pystack3d`). Writes benchmarks/out/imaging.json
(imaging_quick.json with --quick, imaging_<Z>x<Y>x<X>.json with --shape, ``_r<N>`` added
for a non-default --render-scale), rewritten after every step. The machine may be shared: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _peer_pystack3d import CHAIN_CODE, ensure_peer

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

# Runs inside the peer venv (numpy 2): same stack, same region, same work.
PEER_CODE = CHAIN_CODE + r"""
import json, sys, time
from pyvsnr import vsnr2d

stack = np.load(sys.argv[1], mmap_mode="r")
r0, r1 = int(sys.argv[2]), int(sys.argv[3])
n_destripe = int(sys.argv[4])

clean = np.load(sys.argv[1].replace("stack.npy", "clean_nf.npy"))
dirty = np.load(sys.argv[1].replace("stack.npy", "dirty_nf.npy"))

def stripe_power(a):
    a = np.asarray(a, float); a = a - a.mean()
    p = np.abs(np.fft.rfft2(a)) ** 2; p[0, 0] = 0
    return float(p[0].sum() / p.sum())

def residual(out, ref, raw):
    # curtain residual after the best affine fit to the curtain-free slice, relative to the input's
    A = np.stack([np.ravel(out), np.ones(out.size)], 1)
    c, *_ = np.linalg.lstsq(A, np.ravel(ref), rcond=None)
    return float(np.std(A @ c - np.ravel(ref)) / np.std(np.ravel(raw) - np.ravel(ref)))

shifts, t_reg, (sy, sx) = chained_shifts(stack, r0, r1)

filters = [{"name": "Gabor", "noise_level": 20, "sigma": (1, 30), "theta": 0}]
t0 = time.perf_counter()
before, after, resid, outs = [], [], [], []
for k in range(n_destripe):
    im = np.asarray(stack[k], np.float32)
    out = np.asarray(vsnr2d(im, filters, maxit=100, norm=True), float)
    before.append(stripe_power(im[r1:])); after.append(stripe_power(out[r1:]))
    outs.append(out)
t_des = time.perf_counter() - t0
resid_noisy = []
for k, out in enumerate(outs):  # see noisy_residual in benchmarks/imaging.py
    raw = np.asarray(stack[k], float)[r1:]
    A = np.stack([np.ravel(out[r1:]), np.ones(out[r1:].size)], 1)
    c, *_ = np.linalg.lstsq(A, np.ravel(raw), rcond=None)
    true = np.ravel(dirty[k].astype(float)[r1:] - clean[k].astype(float)[r1:])
    resid_noisy.append(float(np.std(np.ravel(raw) - A @ c - true) / np.std(true)))
for k in range(n_destripe):  # accuracy on the noise-free pair (not timed)
    im = dirty[k].astype(np.float32)
    out = np.asarray(vsnr2d(im, filters, maxit=100, norm=True), float)
    resid.append(residual(out[r1:], clean[k].astype(float)[r1:], im[r1:]))
print(json.dumps({"t_register_s": t_reg, "n_register": len(stack) - 1, "shifts_px": shifts.tolist(),
                  "t_destripe_s": t_des, "n_destripe": n_destripe,
                  "stripe_power_before": float(np.median(before)),
                  "stripe_power_after": float(np.median(after)), "curtain_residual": float(np.median(resid)),
                  "curtain_residual_noisy": float(np.median(resid_noisy)),
                  "sign": [float(sy), float(sx)]}))
"""

STAGE_CODE = r"""
import sys
from magtwin.imaging.denoise import run_denoise
from magtwin.imaging.align import run_align
from magtwin.reconstruct.segment import run_segment
from magtwin.reconstruct.grains import run_grains
stage, src, dst = sys.argv[1:4]
if stage == "grains":
    run_grains(src, dst, image_path=sys.argv[4])
else:
    {"denoise": run_denoise, "align": run_align, "segment": run_segment}[stage](src, dst)
"""


def stage_memory(ps) -> tuple[int, int]:
    """Memory of a running stage (``psutil.Process``) in bytes: its RSS, and its RSS plus the
    unique set size (USS) of its child processes - forked workers share the parent's pages,
    so only the memory that is their own counts. Raises ``psutil.Error`` if it is gone."""
    main = ps.memory_info().rss
    return main, main + sum(c.memory_full_info().uss for c in ps.children(recursive=True))


def run_measured(argv: list[str]) -> tuple[float, float, float]:
    """Run a command; return (wall seconds, peak memory in MiB polled every 200 ms -- its
    RSS plus the unique set size of its child processes, which share the parent's pages --, CPU seconds (user + system) of it and its waited-for children).
    CPU seconds barely depend on what else loads the machine; wall seconds do."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(argv)
    ps = psutil.Process(proc.pid)
    peak = 0
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            peak = max(peak, stage_memory(ps)[1])
        except psutil.Error:
            pass
        time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed with exit code {proc.returncode}")
    return time.perf_counter() - t0, peak / 2 ** 20, ru.ru_utime + ru.ru_stime


class FastStack:
    """Synthetic raw slices ``(ny, nx)`` rendered at ``1/scale`` resolution and upsampled,
    artefacts at full resolution (see the module docstring). ``shifts_px`` and ``cap_rows``
    are in full-resolution pixels; :meth:`truth_slice` gives the ground-truth labels on the
    full-resolution grid of the aligned stack.

    ``supersample`` (default: the synthetic sample's, 4): sub-samples per pixel side where a
    thin phase touches a pixel. Do not lower it to 1 to save time: a 3 nm GB is then sampled
    at pixel centres only and shows as dotted lines with bright bars where a face runs along
    a pixel row (aliasing that a detector, which integrates over the pixel, does not make);
    on such a stack the segmentation found 5x too many grains (issue 3)."""

    def __init__(self, shape, seed: int, scale: int = 1, supersample: int | None = None):
        from magtwin.synth import SampleGenerator
        from magtwin.synth.artefacts import Curtains, shading_field
        from magtwin.synth.params import resolve_params

        nz, ny, nx = (int(v) for v in shape)
        d = resolve_params(None)
        if supersample is not None:
            d["supersample"] = int(supersample)
        vz, vy, vx = d["voxel_size_nm"]
        over = {}
        if scale > 1:
            over = {"voxel_size_nm": [vz, vy * scale, vx * scale],
                    "psf_sigma_px": d["psf_sigma_px"] / scale,
                    "drift_step_px": d["drift_step_px"] / scale,
                    "drift_mean_px": [v / scale for v in d["drift_mean_px"]]}
        self.scale, self.shape, self.seed = scale, (nz, ny, nx), seed
        self.base = SampleGenerator(None, seed=seed, shape_px=[nz, ny // scale, nx // scale],
                                    supersample=d["supersample"], **over)
        self.p = self.base.params
        self.voxel = (vz, vy, vx)
        self.shifts_px = self.base.shifts_px * scale
        c = self.base.cap_rows
        self.cap_rows = None if c is None else (c[0] * scale, c[1] * scale)
        rng = np.random.default_rng([seed, 101])
        self.shading = shading_field((ny, nx), self.p["shading"], rng)
        lo = (min(self.shifts_px[:, 1].min(), 0) - 10) * vx
        hi = (max(self.shifts_px[:, 1].max(), 0) + nx + 10) * vx
        self.curtains = Curtains.random((lo, hi), ny * vy, vx, self.p["curtaining"],
                                        self.p["curtain_period_slices"], rng)

    def raw_slice(self, k: int, noise: bool = True, curtains: bool = True) -> np.ndarray:
        from scipy import ndimage

        from magtwin.synth.artefacts import intensity_to_dn, poisson_gaussian

        nz, ny, nx = self.shape
        vz, vy, vx = self.voxel
        s = self.scale
        dy, dx = self.base.shifts_px[k]
        img = self.base.renderer.ideal_window(k, (dy, dx), (ny // s, nx // s))
        if s > 1:
            img = ndimage.zoom(img, s, order=1, grid_mode=True, mode="nearest")
        if curtains and self.p["curtaining"] > 0:
            xw = (np.arange(nx) + dx * s) * vx
            depth = (np.arange(ny) + dy * s) * vy - self.base.renderer.y_top
            img = img * self.curtains.factor(k, xw, depth)
        img = img * self.shading * self.base.slice_gain[k]
        if noise:
            img = poisson_gaussian(img, self.p["noise_level"], self.p["noise_poisson_fraction"],
                                   self.p["grain_intensity"], np.random.default_rng([self.seed, 102, k]))
        return intensity_to_dn(img)

    def truth_slice(self, k: int) -> np.ndarray:
        """Ground-truth grain ids (uint32 (ny, nx), 0 in the cap) of slice ``k`` on the
        full-resolution grid in the frame of slice 0: the grain owning each pixel centre.

        Upsampling by ``scale`` with ``grid_mode`` puts full-resolution pixel ``j`` at
        ``(j + 0.5) / scale - 0.5`` rendered pixels, i.e. at ``(j + 0.5 - scale / 2)`` full
        pixels of the world frame of the renderer (``j - 0.5`` for ``scale`` 2)."""
        nz, ny, nx = self.shape
        vz, vy, vx = self.voxel
        off = 0.5 - 0.5 * self.scale
        ys = (np.arange(ny) + off) * vy
        xs = (np.arange(nx) + off) * vx
        r = self.base.renderer
        lab = np.zeros((ny, nx), np.uint32)
        s_r = ys > r.y_cap
        owner, _ = r._centre_grid(ys[s_r], xs, k * vz)
        lab[s_r] = owner + 1
        return lab


def make_stack(folder: Path, shape, seed: int, n_ref: int, scale: int, supersample: int | None = None):
    """The stack streamed into an ingest artefact (+ a .npy copy for the peer), and for the
    first ``n_ref`` slices the stripe-removal references: noise-free with and without
    curtaining, and noisy without curtaining (same noise)."""
    from magtwin.io.artefact import ArtefactWriter

    gen = FastStack(shape, seed, scale, supersample)
    for name, kw in (("dirty_nf", {"noise": False}), ("clean_nf", {"noise": False, "curtains": False}),
                     ("clean_noisy", {"curtains": False})):
        np.save(folder / f"{name}.npy", np.stack([gen.raw_slice(k, **kw) for k in range(n_ref)]))
    npy = np.lib.format.open_memmap(folder / "stack.npy", "w+", np.uint16, tuple(shape))
    with ArtefactWriter(folder / "01_ingest.h5", "ingest", {"benchmark": True}) as w:
        vol = w.create_volume("volume", shape, np.uint16)
        for k in range(shape[0]):
            vol[k] = npy[k] = gen.raw_slice(k)
            if (k + 1) % 50 == 0:
                print(f"  generated {k + 1}/{shape[0]} slices", flush=True)
        w.h5.attrs["voxel_size_nm"] = gen.voxel
    npy.flush()
    return gen.shifts_px, gen.cap_rows


def make_truth(folder: Path, shape, seed: int, scale: int) -> int:
    """The ground-truth labels of the stack (:meth:`FastStack.truth_slice`), streamed slice
    by slice into ``truth.h5`` (stage ``truth``, dataset ``labels``); returns the number of
    grains of the sample."""
    from magtwin.io.artefact import ArtefactWriter

    gen = FastStack(shape, seed, scale)
    with ArtefactWriter(folder / "truth.h5", "truth", {"benchmark": True, "seed": seed,
                                                      "render_scale": scale}) as w:
        vol = w.create_volume("labels", shape, np.uint32)
        for k in range(shape[0]):
            vol[k] = gen.truth_slice(k)
            if (k + 1) % 100 == 0:
                print(f"  truth {k + 1}/{shape[0]} slices", flush=True)
        w.h5.attrs["voxel_size_nm"] = gen.voxel
        w.h5.attrs["n_grains"] = gen.base.micro.n_grains
    return gen.base.micro.n_grains


class _FirstSlices:
    """The first ``n`` slices of a (z, y, x) dataset, read slice by slice."""

    def __init__(self, ds, n: int):
        self.ds, self.shape = ds, (int(n),) + tuple(ds.shape[1:])

    def __getitem__(self, z):
        return self.ds[z]


def score_grains(truth_path: Path, grains_path: Path) -> dict:
    """The grains stage's labels against the truth, with the tests' scoring
    (:func:`magtwin.reconstruct.scoring.match_grains`: truth grains > 500 voxels matched
    one-to-one at IoU >= 0.8, spurious grains) on the slices the grains artefact holds, plus
    the grain-count ratio (reconstructed / truth grains present) and the size split."""
    import h5py

    from magtwin.reconstruct.scoring import match_grains

    t0 = time.perf_counter()
    with h5py.File(truth_path, "r") as ft, h5py.File(grains_path, "r") as fg:
        lab = fg["labels"]
        m = match_grains(_FirstSlices(ft["labels"], lab.shape[0]), lab, min_voxels=500, min_iou=0.8)
        tab = fg["grain_table"][:, 1]   # volume_voxels
    iou = m.pop("iou")
    m.update({"grain_count_ratio": m["n_reconstructed"] / m["n_truth_all"],
              "n_reconstructed_over_500": int((tab >= 500).sum()),
              "iou_percentiles_10_50_90": np.percentile(iou, [10, 50, 90]).tolist() if len(iou) else [],
              "seconds": time.perf_counter() - t0, "grains_mtime": grains_path.stat().st_mtime})
    return m


def prefix_ingest(src: Path, dst: Path, n: int) -> None:
    """The first ``n`` slices of an ingest artefact as another one (the short stack)."""
    import h5py

    from magtwin.io.artefact import ArtefactWriter

    with h5py.File(src, "r") as f, ArtefactWriter(dst, "ingest", {"benchmark": True, "prefix": n}) as w:
        v = w.create_volume("volume", (n,) + f["volume"].shape[1:], f["volume"].dtype)
        for k in range(n):
            v[k] = f["volume"][k]
        w.h5.attrs["voxel_size_nm"] = f.attrs["voxel_size_nm"]


STAGES = ("denoise", "align", "segment", "grains")


def run_stages(folder: Path, ingest: Path, nz: int, tag: str = "", state: dict | None = None,
               save=None) -> list[dict]:
    """The four stages, each in its own process; rows of seconds, slices/s, CPU s/slice, peak
    RSS. With ``state`` (a dict persisted by ``save()`` after each stage), stages recorded
    there whose output still exists are skipped (resume)."""
    state = {} if state is None else state
    rows, prev, files = [], ingest, {}
    for i, st in enumerate(STAGES):
        out = folder / f"{tag}0{i + 2}_{st}.h5"
        files[st] = out
        key = f"{tag}{st}"
        if key in state and out.exists():
            rows.append(state[key])
            prev = out
            continue
        cmd = [sys.executable, "-c", STAGE_CODE, st, str(prev), str(out)]
        if st == "grains":
            cmd.append(str(files["align"]))
        wall, peak, cpu = run_measured(cmd)
        row = {"stage": st, "slices": nz, "seconds": wall, "slices_per_s": nz / wall,
               "cpu_seconds": cpu, "cpu_s_per_slice": cpu / nz, "peak_rss_MiB": peak}
        print(f"  {st:8s} {nz:4d} slices {wall:8.1f} s  {nz / wall:7.2f} slices/s  "
              f"{cpu / nz:6.2f} CPU s/slice  peak {peak:7.0f} MiB", flush=True)
        rows.append(row)
        state[key] = row
        if save is not None:
            save()
        prev = out
    return rows


def ours_same_work(folder: Path, band, n_destripe: int):
    """magtwin's registration and stripe removal on the raw stack, timed in-process like the
    peer: consecutive pairs on the band (like for like), the align stage's estimate, and
    the denoise stage's stripe removal."""
    from magtwin.imaging import align, destripe, quality
    from magtwin.imaging.denoise import DEFAULTS as DEN

    stack = np.load(folder / "stack.npy", mmap_mode="r")
    r0, r1 = band
    t0 = time.perf_counter()
    prev, pair = None, [np.zeros(2)]
    for k in range(len(stack)):
        spec = align.spectrum(np.asarray(stack[k, r0:r1], np.float64))
        if prev is not None:
            pair.append(align.register(prev, spec, align.DEFAULTS["upsample_factor"]))
        prev = spec
    t_pairs = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = align.estimate_shifts(stack, dict(align.DEFAULTS), folder / "stack.npy", band)
    t_stage = time.perf_counter() - t0

    def des(a):
        return destripe.remove_stripes(a, DEN["stripe_width_px"], DEN["stripe_length_px"], 0,
                                       bool(DEN["stripe_multiplicative"]), DEN["stripe_reference"])

    clean, dirty = np.load(folder / "clean_nf.npy"), np.load(folder / "dirty_nf.npy")
    ideal = np.load(folder / "clean_noisy.npy")
    t0 = time.perf_counter()
    outs = [des(np.asarray(stack[k], np.float32)) for k in range(n_destripe)]
    t_des = time.perf_counter() - t0
    before, after, floor, resid, resid_noisy = [], [], [], [], []
    for k, out in enumerate(outs):
        resid_noisy.append(noisy_residual(out[r1:], np.asarray(stack[k], float)[r1:],
                                          dirty[k].astype(float)[r1:], clean[k].astype(float)[r1:]))
        before.append(quality.stripe_power(np.asarray(stack[k], float)[r1:]))
        after.append(quality.stripe_power(out[r1:]))
        floor.append(quality.stripe_power(ideal[k].astype(float)[r1:]))
        im, ref = dirty[k].astype(float)[r1:], clean[k].astype(float)[r1:]
        o = des(dirty[k].astype(np.float32))[r1:]
        a = np.stack([o.ravel(), np.ones(o.size)], 1)
        c, *_ = np.linalg.lstsq(a, ref.ravel(), rcond=None)
        resid.append(float(np.std(a @ c - ref.ravel()) / np.std(im.ravel() - ref.ravel())))
    return {"t_register_pairs_s": t_pairs, "shifts_pairs_px": np.cumsum(pair, axis=0),
            "t_register_stage_s": t_stage, "shifts_stage_px": r["shifts_px"],
            "t_destripe_s": t_des, "stripe_power_before": float(np.median(before)),
            "stripe_power_after": float(np.median(after)),
            "stripe_power_curtain_free": float(np.median(floor)),
            "curtain_residual": float(np.median(resid)),
            "curtain_residual_noisy": float(np.median(resid_noisy))}


def noisy_residual(out, raw, dirty_nf, clean_nf) -> float:
    """Curtain residual of a destriped noisy slice: the removed pattern ``raw - out`` (``out``
    affinely fitted to ``raw``) against the true curtains ``dirty_nf - clean_nf`` of the
    noise-free pair, ``std(error) / std(curtains)``; whatever else is removed (noise, image
    content) counts as error."""
    a = np.stack([np.ravel(out), np.ones(np.size(out))], 1)
    c, *_ = np.linalg.lstsq(a, np.ravel(raw), rcond=None)
    true = np.ravel(dirty_nf) - np.ravel(clean_nf)
    return float(np.std(np.ravel(raw) - a @ c - true) / np.std(true))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small stack (40 x 256 x 256)")
    ap.add_argument("--shape", help="Z,Y,X (overrides --quick)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--short", type=int, help="slices of the short stack (memory check)")
    ap.add_argument("--render-scale", type=int, help="render the scene at 1/N resolution and "
                    "upsample (default 1; 2 is faster but blurs the GB lines, see above)")
    ap.add_argument("--supersample", type=int, help="sub-samples per pixel side of thin phases "
                    "(default: the synthetic sample's, 4; see FastStack)")
    ap.add_argument("--no-peer", action="store_true", help="skip the PyStack3D comparison")
    ap.add_argument("--keep", "--work", dest="work", type=Path,
                    help="work folder (default: /tmp/magtwin-imaging-bench/<shape>_seed<S>_r<scale>)")
    ap.add_argument("--redo", default="", help="comma-separated steps to repeat: generate, "
                    "denoise, align, segment, grains (and the stages after it), peer")
    ap.add_argument("--fresh", action="store_true", help="repeat every step")
    ap.add_argument("--rerun", default="", help="comma-separated stages to measure again on "
                    "the whole and the short stack after a code change, without redoing the "
                    "stages after them (outputs to rerun_*.h5; rows in 'stage_reruns')")
    args = ap.parse_args(argv)
    shape = [int(v) for v in args.shape.split(",")] if args.shape else (
        [40, 256, 256] if args.quick else [500, 1024, 1024])
    nz = shape[0]
    big = shape[1] * shape[2] >= 1024 * 1024
    scale = args.render_scale or 1
    n_short = args.short or (nz // 2 if args.quick else nz // 5)
    n_des = min(nz, 6 if big else 20)
    from magtwin.synth.params import defaults as synth_defaults

    ss = args.supersample or int(synth_defaults()["supersample"])
    work = args.work or Path(tempfile.gettempdir()) / "magtwin-imaging-bench" / (
        f"{shape[0]}x{shape[1]}x{shape[2]}_seed{args.seed}_r{scale}_ss{ss}")
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() and not args.fresh else {}
    redo = {r.strip() for r in args.redo.split(",") if r.strip()}
    if "generate" in redo:
        state = {}
    for st in [st for st in STAGES if st in redo]:
        for later in STAGES[STAGES.index(st):]:
            state.pop(later, None)
            state.pop(f"short_{later}", None)
    if "peer" in redo:
        state.pop("peer", None)
    if state.get("short_slices") not in (None, n_short):  # another short length: redo it
        for st in STAGES:
            state.pop(f"short_{st}", None)

    OUT.mkdir(parents=True, exist_ok=True)
    tag = "" if scale == 1 else f"_r{scale}"
    name = ("imaging_quick.json" if args.quick and not args.shape else
            f"imaging_{shape[0]}x{shape[1]}x{shape[2]}{tag}.json" if args.shape else f"imaging{tag}.json")
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {"shape": shape, "seed": args.seed, "render_scale": scale, "supersample": ss,
              "work_folder": str(work),
              "commit": commit, "cpu_count": os.cpu_count(),
              "load_average_at_start": list(os.getloadavg())}

    # the grains score of the previous report on this stack is kept when it changes (before
    # and after a change of the grains stage, same stack)
    prev = json.loads((OUT / name).read_text()) if (OUT / name).exists() else {}
    history = prev.get("grains_score_history", [])

    def save() -> None:  # after every step: state for resuming, result for reading
        state_path.write_text(json.dumps(state, indent=1))
        (OUT / name).write_text(json.dumps(result, indent=2))

    print(f"stack {shape[0]} x {shape[1]} x {shape[2]}, scene rendered at 1/{scale} "
          f"(work folder {work})", flush=True)
    if "generate" not in state or not (work / "01_ingest.h5").exists():
        state = {}
        t0, c0 = time.perf_counter(), time.process_time()
        true_shifts, cap_rows = make_stack(work, shape, args.seed, n_des, scale, ss)
        state["generate"] = {"seconds": time.perf_counter() - t0,
                             "cpu_seconds": time.process_time() - c0,
                             "shifts_px": np.asarray(true_shifts).tolist(),
                             "cap_rows": None if cap_rows is None else [int(c) for c in cap_rows]}
        save()
        print(f"generated in {state['generate']['seconds']:.0f} s", flush=True)
    else:
        print("stack generated before (cached)", flush=True)
    if "truth" not in state or not (work / "truth.h5").exists():
        t0 = time.perf_counter()
        state["truth"] = {"n_grains": make_truth(work, shape, args.seed, scale),
                          "seconds": time.perf_counter() - t0}
        save()
    gen = state["generate"]
    true_shifts = np.asarray(gen["shifts_px"])
    cap_rows = gen["cap_rows"]
    result.update({"generate_s": gen["seconds"], "generate_cpu_s": gen.get("cpu_seconds"),
                   "generate_cpu_s_per_slice": (gen.get("cpu_seconds") or np.nan) / nz})

    print(f"whole stack ({nz} slices):", flush=True)
    rows = run_stages(work, work / "01_ingest.h5", nz, state=state, save=save)
    result["stages"] = rows

    import h5py

    from magtwin.reconstruct.scoring import shift_rms_error

    with h5py.File(work / "03_align.h5", "r") as f:
        pipeline_rms = shift_rms_error(f["shifts_px"][...], true_shifts)
    with h5py.File(work / "02_denoise.h5", "r") as f:
        denoise_q = json.loads(f.attrs["quality_json"])
    with h5py.File(work / "05_grains.h5", "r") as f:
        grains_q = json.loads(f.attrs["quality_json"])
    result.update({"pipeline_drift_rms_px": pipeline_rms,
                   "denoise_quality": denoise_q, "grains_quality": grains_q,
                   "total_stage_seconds": sum(r["seconds"] for r in rows),
                   "total_stage_cpu_seconds": sum(r["cpu_seconds"] for r in rows)})
    save()

    # memory must not grow with the number of slices: the same stages on the first slices
    if not (work / "short_01_ingest.h5").exists() or state.get("short_slices") != n_short:
        prefix_ingest(work / "01_ingest.h5", work / "short_01_ingest.h5", n_short)
        state["short_slices"] = n_short
    print(f"short stack ({n_short} slices):", flush=True)
    short_rows = run_stages(work, work / "short_01_ingest.h5", n_short, "short_", state, save)
    result["stages_short"] = short_rows
    result["peak_rss_growth_MiB"] = {r["stage"]: r["peak_rss_MiB"] - s_["peak_rss_MiB"]
                                     for r, s_ in zip(rows, short_rows)}
    result["peak_rss_growth_MiB_per_100_slices"] = {
        k: 100 * v / (nz - n_short) for k, v in result["peak_rss_growth_MiB"].items()}
    save()

    # the grains stage against the ground truth (issue 3 targets: >= 90 % matched, <= 5 % spurious)
    for tag in ("", "short_"):
        g = work / f"{tag}05_grains.h5"
        sc = state.get(f"{tag}score")
        if sc is None or sc.get("grains_mtime") != g.stat().st_mtime:
            state[f"{tag}score"] = score_grains(work / "truth.h5", g)
            save()
    result["grains_score"] = state["score"]
    result["grains_score_short"] = state["short_score"]
    same = ("n_matched", "n_spurious", "n_reconstructed")
    if prev.get("grains_score") and any(prev["grains_score"].get(k) != state["score"][k] for k in same):
        history.append({k: v for k, v in prev.items() if k.startswith("grains_score") and
                        k != "grains_score_history" or k in ("commit", "note")}
                       | {"grains_stage": [r for r in prev.get("stages", []) if r["stage"] == "grains"]})
    if history:
        result["grains_score_history"] = history
    save()

    for st in [st for st in STAGES if st in {r.strip() for r in args.rerun.split(",")}]:
        i = STAGES.index(st)
        reruns = state.setdefault("stage_reruns", {})
        for tag, n in (("", nz), ("short_", n_short)):
            src = work / (f"{tag}0{i + 1}_{STAGES[i - 1]}.h5" if i else f"{tag}01_ingest.h5")
            cmd = [sys.executable, "-c", STAGE_CODE, st, str(src), str(work / f"rerun_{tag}0{i + 2}_{st}.h5")]
            if st == "grains":
                cmd.append(str(work / f"{tag}03_align.h5"))
            wall, peak, cpu = run_measured(cmd)
            reruns[f"{tag}{st}"] = {"stage": st, "slices": n, "seconds": wall, "slices_per_s": n / wall,
                                    "cpu_seconds": cpu, "cpu_s_per_slice": cpu / n, "peak_rss_MiB": peak,
                                    "commit": commit}
            print(f"  rerun {st:8s} {n:4d} slices {wall:8.1f} s  {cpu / n:6.2f} CPU s/slice  "
                  f"peak {peak:7.0f} MiB", flush=True)
            save()

    if not args.no_peer:
        if "peer" not in state:
            cmp = peer_comparison(work, shape, cap_rows, true_shifts, n_des)
            if cmp is not None:
                state["peer"] = cmp
                save()
        if "peer" in state:
            result["pystack3d"] = state["peer"]
    if "stage_reruns" in state:  # stages re-measured after a code change (see --rerun)
        result["stage_reruns"] = state["stage_reruns"]
    result["completed"] = "all"
    result["load_average_at_end"] = list(os.getloadavg())
    save()
    print_table(result)
    print(f"\nwritten {OUT / name}")
    return 0


def peer_comparison(work: Path, shape, cap_rows, true_shifts, n_des: int) -> dict | None:
    """Registration and stripe removal, magtwin and PyStack3D side by side on the raw stack."""
    from magtwin.imaging.align import DEFAULTS as ALIGN, _registration_band
    from magtwin.reconstruct.scoring import shift_rms_error

    py = ensure_peer()
    if py is None:
        print("PyStack3D could not be installed: comparison skipped")
        return None
    band = _registration_band(cap_rows, shape[1], int(ALIGN["cap_margin_px"]))
    print(f"PyStack3D comparison (band rows {band[0]}:{band[1]}, {n_des} slices destriped)", flush=True)
    ours = ours_same_work(work, band, n_des)
    r = subprocess.run([str(py), "-c", PEER_CODE, str(work / "stack.npy"), str(band[0]),
                        str(band[1]), str(n_des)], capture_output=True, text=True)
    if r.returncode != 0:
        print("PyStack3D run failed:\n" + r.stderr[-2000:])
        return None
    peer = json.loads(r.stdout.strip().splitlines()[-1])
    return {
        "band_rows": list(band),
        "register_time_ratio_peer_over_ours": peer["t_register_s"] / ours["t_register_pairs_s"],
        "register_time_ratio_peer_over_ours_stage_method":
            peer["t_register_s"] / ours["t_register_stage_s"],
        "destripe_time_ratio_peer_over_ours": peer["t_destripe_s"] / ours["t_destripe_s"],
        "ours": {k: v for k, v in ours.items() if not k.startswith("shifts")},
        "peer": {k: v for k, v in peer.items() if k != "shifts_px"},
        "drift_rms_px_ours_pairs": shift_rms_error(ours["shifts_pairs_px"], true_shifts),
        "drift_rms_px_ours_stage_method": shift_rms_error(ours["shifts_stage_px"], true_shifts),
        "drift_rms_px_peer": shift_rms_error(np.asarray(peer["shifts_px"]), true_shifts),
    }


def print_table(result: dict) -> None:
    nz, ny, nx = result["shape"]
    n_short = result["stages_short"][0]["slices"] if result.get("stages_short") else 0
    result.setdefault("stages_short", [{"peak_rss_MiB": float("nan")}] * len(result["stages"]))
    print(f"\n{nz} x {ny} x {nx} stack (machine shared: compare ratios)")
    print(f"  {'stage':8s} {'slices/s':>9s} {'CPU s':>9s} {'peak MiB':>9s} {'peak MiB':>9s} {'MiB per':>9s}")
    print(f"  {'':8s} {'':>9s} {'/slice':>9s} {f'{nz} sl.':>9s} {f'{n_short} sl.':>9s} {'100 sl.':>9s}")
    for r, s_ in zip(result["stages"], result["stages_short"]):
        cpu = r.get("cpu_s_per_slice", float("nan"))
        grow = (r["peak_rss_MiB"] - s_["peak_rss_MiB"]) * 100 / max(nz - n_short, 1)
        print(f"  {r['stage']:8s} {r['slices_per_s']:9.2f} {cpu:9.2f} {r['peak_rss_MiB']:9.0f} "
              f"{s_['peak_rss_MiB']:9.0f} {grow:+9.1f}")
    print(f"  generation {result['generate_s']:.0f} s ({result.get('generate_cpu_s_per_slice', float('nan')):.2f} "
          f"CPU s/slice), stages {result['total_stage_seconds']:.0f} s "
          f"({result.get('total_stage_cpu_seconds', float('nan')):.0f} CPU s), "
          f"pipeline drift RMS {result['pipeline_drift_rms_px']:.3f} px")
    for key, tag in (("grains_score", f"{nz} sl."), ("grains_score_short", f"{n_short} sl.")):
        sc = result.get(key)
        if sc:
            print(f"  grains vs truth ({tag}): {100 * sc['matched_fraction']:.1f} % of {sc['n_truth']} truth "
                  f"grains > 500 voxels matched at IoU >= 0.8, {100 * sc['spurious_fraction']:.1f} % spurious, "
                  f"{sc['n_reconstructed']} grains for {sc['n_truth_all']} "
                  f"(ratio {sc['grain_count_ratio']:.2f}; {sc['n_reconstructed_over_500']} > 500 voxels)")
    for key, r in result.get("stage_reruns", {}).items():
        print(f"  rerun {key:14s} {r['slices']:4d} slices {r['slices_per_s']:7.2f} slices/s "
              f"{r['cpu_s_per_slice']:6.2f} CPU s/slice  peak {r['peak_rss_MiB']:5.0f} MiB  (commit {r['commit']})")
    cmp = result.get("pystack3d")
    if not cmp:
        return
    o, p = cmp["ours"], cmp["peer"]
    print("\n  same work, band rows %d:%d              magtwin    PyStack3D   peer/ours" % tuple(cmp["band_rows"]))
    print(f"  registration, {nz - 1} consecutive pairs {o['t_register_pairs_s']:8.2f} s {p['t_register_s']:8.2f} s"
          f"   {cmp['register_time_ratio_peer_over_ours']:6.1f}x")
    print(f"  drift RMS error vs truth           {cmp['drift_rms_px_ours_pairs']:8.3f} px{cmp['drift_rms_px_peer']:8.3f} px")
    print(f"  align-stage estimate (pair+anchor) {o['t_register_stage_s']:8.2f} s   RMS {cmp['drift_rms_px_ours_stage_method']:.3f} px"
          f"   {cmp['register_time_ratio_peer_over_ours_stage_method']:6.1f}x")
    print(f"  stripe removal, {p['n_destripe']} slices          {o['t_destripe_s']:8.2f} s {p['t_destripe_s']:8.2f} s"
          f"   {cmp['destripe_time_ratio_peer_over_ours']:6.1f}x")
    print(f"  stripe power after (before {o['stripe_power_before']:.4f}, curtain-free {o['stripe_power_curtain_free']:.4f})"
          f" {o['stripe_power_after']:.4f}   {p['stripe_power_after']:.4f}")
    print(f"  curtain residual (noise-free pair)  {o['curtain_residual']:8.3f}    {p['curtain_residual']:8.3f}")
    if "curtain_residual_noisy" in o and "curtain_residual_noisy" in p:
        print(f"  curtain residual (noisy slices)     {o['curtain_residual_noisy']:8.3f}    "
              f"{p['curtain_residual_noisy']:8.3f}")


if __name__ == "__main__":
    sys.exit(main())
