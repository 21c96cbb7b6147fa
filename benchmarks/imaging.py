"""Benchmark of the tomography stages (denoise, align, segment, grains) and a side-by-side
comparison with PyStack3D (registration and stripe removal) on the same synthetic stack.

    python benchmarks/imaging.py --quick          # 40 x 256 x 256, a few minutes
    python benchmarks/imaging.py                  # 500 x 1024 x 1024 (issue 3 size; long)
    python benchmarks/imaging.py --shape 100,512,512 --no-peer

Reports, per stage, throughput (slices/s) and peak resident memory (each stage runs in its
own process, RSS polled), the peak memory of `align` on the first half of the stack versus
the whole stack (it must not grow with the number of slices), and for the registration and
stripe-removal work timed side by side with PyStack3D (pystackreg translation registration
of consecutive slices, cumulated; pyvsnr VSNR destriping), the time ratio and the accuracy
of both (drift RMS error against the known shifts; stripe power after removal).
PyStack3D needs numpy>=2, so it runs in its own venv, benchmarks/.venv-peers (created on
first use with `pip install pystack3d`). Writes benchmarks/out/imaging.json.
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

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-peers"
OUT = HERE / "out"

# Runs inside the peer venv (numpy 2): same stack, same region, same work.
PEER_CODE = r"""
import json, sys, time
import numpy as np
from pystackreg import StackReg
from pystack3d.registration_calculation import tmat_calculation
from pystack3d.utils import cumdot
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

# calibrate the sign convention of the translation matrices on a known shift
rng = np.random.default_rng(0)
img = np.cumsum(np.cumsum(rng.normal(size=(64, 64)), 0), 1)
mov = np.roll(img, (3, -2), axis=(0, 1))  # content moved by (+3, -2)
t = tmat_calculation(img, mov)[0]
sy, sx = np.sign(-t[1, 2] / 3.0), np.sign(t[0, 2] / 2.0)

t0 = time.perf_counter()
tm = [np.identity(3)[None]] + [tmat_calculation(np.asarray(stack[k - 1, r0:r1], float),
                                                np.asarray(stack[k, r0:r1], float))
                               for k in range(1, len(stack))]
cum = cumdot(np.asarray([m[0] for m in tm]))
t_reg = time.perf_counter() - t0
# content moved by d <=> raw slice shows (y - d): convert to magtwin's (dy, dx) convention
shifts = np.stack([sy * cum[:, 1, 2], -sx * cum[:, 0, 2]], axis=1)

filters = [{"name": "Gabor", "noise_level": 20, "sigma": (1, 30), "theta": 0}]
t0 = time.perf_counter()
before, after, resid = [], [], []
for k in range(n_destripe):
    im = np.asarray(stack[k], np.float32)
    out = np.asarray(vsnr2d(im, filters, maxit=100, norm=True), float)
    before.append(stripe_power(im[r1:])); after.append(stripe_power(out[r1:]))
t_des = time.perf_counter() - t0
for k in range(n_destripe):  # accuracy on the noise-free pair (not timed)
    im = dirty[k].astype(np.float32)
    out = np.asarray(vsnr2d(im, filters, maxit=100, norm=True), float)
    resid.append(residual(out[r1:], clean[k].astype(float)[r1:], im[r1:]))
print(json.dumps({"t_register_s": t_reg, "n_register": len(stack) - 1, "shifts_px": shifts.tolist(),
                  "t_destripe_s": t_des, "n_destripe": n_destripe,
                  "stripe_power_before": float(np.median(before)),
                  "stripe_power_after": float(np.median(after)), "curtain_residual": float(np.median(resid)),
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


def run_measured(argv: list[str]) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in MiB, polled every 50 ms)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(argv)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed with exit code {proc.returncode}")
    return time.perf_counter() - t0, peak / 2 ** 20


def make_stack(folder: Path, shape, seed: int, n_clean: int):
    """Synthetic stack streamed into an ingest artefact (+ a .npy copy for the peer), and
    the first ``n_clean`` slices rendered noise-free with and without curtaining (the
    generator's random streams are keyed by purpose, so nothing else differs): the
    reference for the stripe-removal accuracy."""
    from magtwin.io.artefact import ArtefactWriter
    from magtwin.synth import SampleGenerator

    for name, curt in (("dirty_nf", None), ("clean_nf", 0.0)):
        kw = {"noise_level": 0.0} if curt is None else {"noise_level": 0.0, "curtaining": curt}
        g = SampleGenerator(None, seed=seed, shape_px=list(shape), supersample=1, **kw)
        np.save(folder / f"{name}.npy", np.stack([g.raw_slice(k) for k in range(n_clean)]))
    gen = SampleGenerator(None, seed=seed, shape_px=list(shape), supersample=1)
    npy = np.lib.format.open_memmap(folder / "stack.npy", "w+", np.uint16, tuple(shape))
    with ArtefactWriter(folder / "01_ingest.h5", "ingest", {"benchmark": True}) as w:
        vol = w.create_volume("volume", shape, np.uint16)
        for k in range(shape[0]):
            vol[k] = npy[k] = gen.raw_slice(k)
        w.h5.attrs["voxel_size_nm"] = gen.voxel
    npy.flush()
    return gen.shifts_px, gen.cap_rows


def ensure_peer() -> Path | None:
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    if subprocess.run([str(py), "-c", "import pystack3d"], capture_output=True).returncode != 0:
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "pystack3d"])
        if r.returncode != 0:
            return None
    return py


def ours_same_work(folder: Path, cap, n_destripe: int):
    """magtwin's registration (cap band, multi-slice least squares) and stripe removal on
    the raw stack, timed in-process like the peer."""
    from magtwin.imaging import align, destripe, quality

    stack = np.load(folder / "stack.npy", mmap_mode="r")
    p = dict(align.DEFAULTS)
    t0 = time.perf_counter()
    r = align.estimate_shifts(stack, p, folder / "stack.npy", cap)
    t_reg = time.perf_counter() - t0
    clean, dirty = np.load(folder / "clean_nf.npy"), np.load(folder / "dirty_nf.npy")
    t0 = time.perf_counter()
    outs = []
    for k in range(n_destripe):
        outs.append(destripe.remove_stripes(np.asarray(stack[k], np.float32)))
    t_des = time.perf_counter() - t0
    before, after, resid = [], [], []
    r1 = cap[1]
    for k, out in enumerate(outs):
        before.append(quality.stripe_power(np.asarray(stack[k], float)[r1:]))
        after.append(quality.stripe_power(out[r1:]))
        im, ref = dirty[k].astype(float)[r1:], clean[k].astype(float)[r1:]
        out = destripe.remove_stripes(dirty[k].astype(np.float32))
        a = np.stack([out[r1:].ravel(), np.ones(out[r1:].size)], 1)
        c, *_ = np.linalg.lstsq(a, ref.ravel(), rcond=None)
        resid.append(float(np.std(a @ c - ref.ravel()) / np.std(im.ravel() - ref.ravel())))
    return {"t_register_s": t_reg, "shifts_px": r["shifts_px"], "t_destripe_s": t_des,
            "stripe_power_before": float(np.median(before)), "stripe_power_after": float(np.median(after)),
            "curtain_residual": float(np.median(resid))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small stack (40 x 256 x 256)")
    ap.add_argument("--shape", help="Z,Y,X (overrides --quick)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-peer", action="store_true", help="skip the PyStack3D comparison")
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args(argv)
    shape = [int(v) for v in args.shape.split(",")] if args.shape else (
        [40, 256, 256] if args.quick else [500, 1024, 1024])
    nz = shape[0]
    work = args.keep or Path(tempfile.mkdtemp(prefix="magtwin-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"stack {shape[0]} x {shape[1]} x {shape[2]} (work folder {work})", flush=True)
    t0 = time.perf_counter()
    n_des = min(nz, 20)
    true_shifts, cap_rows = make_stack(work, shape, args.seed, n_des)
    print(f"generated in {time.perf_counter() - t0:.0f} s", flush=True)

    rows = []
    files = {"ingest": work / "01_ingest.h5"}
    prev = files["ingest"]
    for i, st in enumerate(("denoise", "align", "segment", "grains")):
        out = work / f"0{i + 2}_{st}.h5"
        cmd = [sys.executable, "-c", STAGE_CODE, st, str(prev), str(out)]
        if st == "grains":
            cmd.append(str(files["align"]))
        wall, peak = run_measured(cmd)
        rows.append({"stage": st, "seconds": wall, "slices_per_s": nz / wall, "peak_rss_MiB": peak})
        print(f"  {st:8s} {wall:8.1f} s  {nz / wall:7.2f} slices/s  peak {peak:7.0f} MiB", flush=True)
        files[st] = prev = out

    # memory must not grow with the number of slices: align on the first half vs all
    import h5py

    from magtwin.io.artefact import ArtefactWriter

    half = work / "half_02_denoise.h5"
    with h5py.File(files["denoise"], "r") as f, ArtefactWriter(half, "denoise", {}) as w:
        v = w.create_volume("volume", (nz // 2,) + tuple(shape[1:]), np.float32)
        for k in range(nz // 2):
            v[k] = f["volume"][k]
        w.h5.attrs["voxel_size_nm"] = f.attrs["voxel_size_nm"]
    _, peak_half = run_measured([sys.executable, "-c", STAGE_CODE, "align", str(half), str(work / "half_align.h5")])
    peak_full = next(r["peak_rss_MiB"] for r in rows if r["stage"] == "align")
    print(f"  align peak RSS: {peak_half:.0f} MiB for {nz // 2} slices, {peak_full:.0f} MiB for {nz}")

    from magtwin.reconstruct.scoring import shift_rms_error

    with h5py.File(files["align"], "r") as f:
        pipeline_rms = shift_rms_error(f["shifts_px"][...], true_shifts)
    result = {"shape": shape, "seed": args.seed, "stages": rows, "align_peak_half_MiB": peak_half,
              "align_peak_full_MiB": peak_full, "pipeline_drift_rms_px": pipeline_rms}

    if not args.no_peer:
        py = ensure_peer()
        if py is None:
            print("PyStack3D could not be installed: comparison skipped")
        else:
            from magtwin.imaging.align import DEFAULTS as ALIGN, _registration_band
            band = _registration_band(cap_rows, shape[1], int(ALIGN["cap_margin_px"]))
            ours = ours_same_work(work, band, n_des)
            r = subprocess.run([str(py), "-c", PEER_CODE, str(work / "stack.npy"), str(band[0]),
                                str(band[1]), str(n_des)], capture_output=True, text=True)
            if r.returncode != 0:
                print("PyStack3D run failed:\n" + r.stderr[-2000:])
            else:
                peer = json.loads(r.stdout.strip().splitlines()[-1])
                cmp = {
                    "register_time_ratio_peer_over_ours": peer["t_register_s"] / ours["t_register_s"],
                    "destripe_time_ratio_peer_over_ours": peer["t_destripe_s"] / ours["t_destripe_s"],
                    "ours": {k: v for k, v in ours.items() if k != "shifts_px"},
                    "peer": {k: v for k, v in peer.items() if k != "shifts_px"},
                    "drift_rms_px_ours": shift_rms_error(ours["shifts_px"], true_shifts),
                    "drift_rms_px_peer": shift_rms_error(np.asarray(peer["shifts_px"]), true_shifts),
                }
                result["pystack3d"] = cmp
                print("\n  same work, cap band rows %d:%d            magtwin     PyStack3D" % band)
                print(f"  registration time ({nz - 1} pairs)  {ours['t_register_s']:9.2f} s {peer['t_register_s']:9.2f} s"
                      f"   ratio {cmp['register_time_ratio_peer_over_ours']:.1f}x")
                print(f"  drift RMS error vs truth         {cmp['drift_rms_px_ours']:9.3f} px{cmp['drift_rms_px_peer']:9.3f} px")
                print(f"  stripe removal time ({n_des} slices) {ours['t_destripe_s']:9.2f} s {peer['t_destripe_s']:9.2f} s"
                      f"   ratio {cmp['destripe_time_ratio_peer_over_ours']:.1f}x")
                print(f"  stripe power before -> after     {ours['stripe_power_before']:.4f} -> {ours['stripe_power_after']:.4f}"
                      f"   {peer['stripe_power_before']:.4f} -> {peer['stripe_power_after']:.4f}")
                print(f"  curtain residual vs curtain-free {ours['curtain_residual']:9.3f}    {peer['curtain_residual']:9.3f}"
                      "   (noise-free pair: std(out - clean) / std(in - clean), affine fit)")
    OUT.mkdir(parents=True, exist_ok=True)
    name = "imaging_quick.json" if args.quick and not args.shape else "imaging.json"
    (OUT / name).write_text(json.dumps(result, indent=2))
    print(f"\nwritten {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
