"""Accuracy of drift correction WITHOUT a cap/fiducial region versus stack length.

    python benchmarks/align_nocap.py --quick     # seeds 41, 45, 47; 30/60 slices of 96 x 128 px
    python benchmarks/align_nocap.py             # seeds 41-44 (default noise), 45-46 (2x noise);
                                                 # 30/60/120/240 slices of 128 x 160 px; steady
                                                 # drift seeds 47, 48 (0.3 px/slice along x),
                                                 # 49 (0.2, 0.2), 50 (-0.3 along x)
    python benchmarks/align_nocap.py --shape 256,512 --lengths 30,60,120   # more grains per slice

For each seed a synthetic sample without cap is generated at the longest length, denoised
slice by slice with the denoise stage's defaults (in memory), and registered once
(``align.estimate_shifts``); the drift model (:func:`magtwin.imaging.drift_model.
drift_without_reference`) then runs on the first n - 1 pair registrations for every length
n - the same result as the stage on a stack of n slices. Reported per seed and length: RMS
error of the shifts against ``truth.shifts_px`` (Euclidean, and per axis), the fraction of
per-axis shifts within 1 and 2 reported sigma, the stack's RMS sigma, and the registration
time per slice (the machine may be shared). Seeds 41-50 were not used to tune the method
(seeds 1-13 were). The summary fits the growth law ``rms = c * n^a`` of the mean RMS error
over the random-walk seeds (a = 0.5: error variance growing linearly with n, the limit for a
stationary microstructure without a fixed reference, see :mod:`magtwin.imaging.drift_model`);
the steady-drift seeds are reported apart, and ``steady_z_sweep`` repeats both groups for
other detection levels of a steady drift rate (``drift_model.STEADY_RATE_Z``, default 3):
the trade-off between keeping a steady drift and not taking the structural bias of a
random-walk stack for one. ``sigma_rms`` is the method's own prediction of its RMS error
(the stack-level figure of the quality report).

Side by side, on the same denoised slices of every seed and length: what a user would do
otherwise, chain whole-slice registrations of consecutive slices - PyStack3D's
(``tmat_calculation`` + ``cumdot``, pystackreg translation; run in its own venv, see
``benchmarks/_peer_pystack3d.py``: registered once at the longest length, the chain at n
slices is its first n - 1 pairs) and magtwin's own whole-slice phase correlation
(``align.spectrum`` / ``align.register``) chained without the drift model - and the chain of
the robust patch means (the drift model's input ``increments_px``, no model: which part of
the method keeps the bias from accumulating), and no correction at all (the true drift's
RMS, the yardstick: a random walk grows like sqrt(n)); also ours with a fixed prior on a
steady drift rate (``drift_rate_sigma_px`` = :data:`FIXED_RATE_SIGMA_PX` instead of
``auto``: "ours, rate prior"). Reported: RMS error of each, the ratio
PyStack3D / ours, registration time per slice of both and their ratio (the machine may be
shared), and ``rms = c * n^a`` fitted per method over the random-walk and the steady-drift
seeds apart (``summary.comparison``). ``--no-peer`` (or a PyStack3D that cannot be
installed) skips the peer. Writes benchmarks/out/align_nocap.json (align_nocap_quick.json
with --quick).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _peer_pystack3d import chained_registration
from magtwin.imaging import align, denoise, drift_model
from magtwin.reconstruct.scoring import shift_rms_error as _rms
from magtwin.synth.sample import make_sample

OUT = Path(__file__).resolve().parent / "out"
Z_SWEEP = (1.0, 1.5, 2.0, 3.0)
#: the methods side by side: row key of their RMS error, label
METHODS = {"ours": ("rms_px", "ours: drift model"),
           "patch_chain": ("rms_px_patch_chain", "patch-mean chain"),
           "plain_chain": ("rms_px_plain_chain", "whole PC chain"),
           "pystack3d": ("rms_px_pystack3d", "PyStack3D chain"),
           "none": ("rms_px_no_correction", "no correction"),
           "fixed_rate": ("rms_px_rate_sigma", "ours, rate prior")}

#: ``drift_rate_sigma_px`` of the "ours, rate prior" row: a steady drift rate kept with this
#: prior standard deviation (px per slice) instead of the ``auto`` test - what a user who
#: knows the instrument drifts steadily would set (see ``magtwin.imaging.align``)
FIXED_RATE_SIGMA_PX = 0.3


def _model(patches: np.ndarray, n: int, z: float, rate_sigma=None) -> dict:
    p = align.DEFAULTS
    return drift_model.drift_without_reference(
        patches[:n - 1], int(p["bias_max_lag_slices"]),
        p["drift_rate_sigma_px"] if rate_sigma is None else rate_sigma, steady_rate_z=z)


def plain_chain(den: np.ndarray) -> tuple[np.ndarray, float]:
    """Whole-slice phase correlation of consecutive slices, cumulated (no drift model):
    shifts (z, 2) px and seconds."""
    t0 = time.perf_counter()
    prev, pair = None, [np.zeros(2)]
    for img in den:
        spec = align.spectrum(np.asarray(img, np.float64))
        if prev is not None:
            pair.append(align.register(prev, spec, int(align.DEFAULTS["upsample_factor"])))
        prev = spec
    return np.cumsum(pair, axis=0), time.perf_counter() - t0


def translation_control(img: np.ndarray, truth: np.ndarray, folder: Path, peer: bool) -> dict:
    """Both chains on a pure translation: ``img`` moved by the true shifts (cubic spline) and
    cropped to the part every slice covers - no structural change between slices, so an
    error here is the registration's own (or a sign/convention error), not the bias."""
    from scipy import ndimage

    m = int(np.ceil(np.abs(truth).max())) + 3
    ctrl = np.stack([ndimage.shift(img, -t, order=3, mode="nearest")[m:-m, m:-m] for t in truth])
    out = {"n_slices": len(truth), "crop_px": m, "rms_px_plain_chain": _rms(plain_chain(ctrl)[0], truth)}
    if peer:
        path = folder / "control.npy"
        np.save(path, ctrl.astype(np.float32))
        ref = (chained_registration([path]) or {}).get(str(path))
        if ref is not None:
            out["rms_px_pystack3d"] = _rms(np.asarray(ref["shifts_px"]), truth)
    return out


def run(seeds, lengths, shape_yx, peer: bool = True) -> tuple[list[dict], list[dict], dict]:
    rows, sweep, control = [], [], {}
    tmp = tempfile.TemporaryDirectory(prefix="align_nocap_")
    for seed, noise, rate in seeds:
        rate = (0.0, rate) if np.isscalar(rate) else tuple(rate)
        s = make_sample(seed=seed, shape_px=[max(lengths), *shape_yx], cap=False, noise_level=noise,
                        drift_mean_px=list(rate))
        p_den = dict(denoise.DEFAULTS)
        den = np.stack([denoise.process_slice(s.stack[k], p_den)[0] for k in range(len(s.stack))])
        truth = s.truth["shifts_px"]
        t0 = time.perf_counter()
        patches = align.estimate_shifts(den, dict(align.DEFAULTS), f"seed {seed}", None)["patch_shifts_px"]
        dt = (time.perf_counter() - t0) / len(den)
        plain, t_plain = plain_chain(den)
        if not control:  # first seed, longest length
            control = {"seed": seed} | translation_control(den[0], truth, Path(tmp.name), peer)
        patch = np.r_[np.zeros((1, 2)), np.cumsum([drift_model.robust_patch_mean(p)[0] for p in patches], 0)]
        ref = None
        if peer:
            path = Path(tmp.name) / f"seed{seed}.npy"
            np.save(path, den.astype(np.float32))
            ref = (chained_registration([path]) or {}).get(str(path))
            path.unlink()
            peer = ref is not None  # not installable or failed: skipped from here on
        for n in lengths:
            for zs in Z_SWEEP:
                r = _model(patches, n, zs)
                sweep.append({"seed": seed, "steady": bool(any(rate)), "n_slices": n, "z": zs,
                              "rms_px": _rms(r["shifts_px"], truth[:n])})
            r = _model(patches, n, drift_model.STEADY_RATE_Z)
            err = r["shifts_px"] - truth[:n]
            z = np.abs(err[1:]) / r["uncertainty_px"][1:]
            rows.append({
                "seed": seed, "noise_level": noise, "drift_rate_y_px": rate[0], "drift_rate_x_px": rate[1],
                "n_slices": n,
                "rms_px": float(np.sqrt((err ** 2).sum(1).mean())),
                "rms_y_px": float(np.sqrt((err[:, 0] ** 2).mean())),
                "rms_x_px": float(np.sqrt((err[:, 1] ** 2).mean())),
                "within_1sigma": float(np.mean(z <= 1)), "within_2sigma": float(np.mean(z <= 2)),
                "sigma_rms_px": float(np.sqrt((r["uncertainty_px"] ** 2).sum(1).mean())),
                "ms_per_slice": 1000 * dt,
                "rms_px_patch_chain": _rms(patch[:n], truth[:n]),
                "rms_px_plain_chain": _rms(plain[:n], truth[:n]),
                "rms_px_no_correction": _rms(0 * truth[:n], truth[:n]),
                "rms_px_rate_sigma": _rms(_model(patches, n, drift_model.STEADY_RATE_Z,
                                                 FIXED_RATE_SIGMA_PX)["shifts_px"], truth[:n]),
                "ms_per_slice_plain_chain": 1000 * t_plain / len(den),
            })
            if ref is not None:
                s_peer = np.asarray(ref["shifts_px"])[:n]
                rows[-1].update({
                    "rms_px_pystack3d": _rms(s_peer, truth[:n]),
                    "rms_x_px_pystack3d": float(np.sqrt(((s_peer[:, 1] - truth[:n, 1]) ** 2).mean())),
                    "ms_per_slice_pystack3d": 1000 * ref["t_register_s"] / len(den)})
                row = rows[-1]
                row["rms_ratio_pystack3d_over_ours"] = row["rms_px_pystack3d"] / row["rms_px"]
                row["time_ratio_pystack3d_over_ours"] = row["ms_per_slice_pystack3d"] / row["ms_per_slice"]
            print("seed {seed:3d} noise {noise_level:.2f} rate {drift_rate_y_px:4.1f},{drift_rate_x_px:4.1f} n {n_slices:4d}  rms {rms_px:5.2f} px "
                  "(y {rms_y_px:4.2f}, x {rms_x_px:4.2f})  within 1/2 sigma {within_1sigma:4.2f}/"
                  "{within_2sigma:4.2f}  sigma_rms {sigma_rms_px:4.2f}  "
                  "{ms_per_slice:5.1f} ms/slice | chains: patch {rms_px_patch_chain:5.2f}, "
                  "plain {rms_px_plain_chain:5.2f}".format(**rows[-1])
                  + (" PyStack3D {rms_px_pystack3d:5.2f} px ({rms_ratio_pystack3d_over_ours:4.1f}x ours), "
                     "{ms_per_slice_pystack3d:5.1f} ms/slice".format(**rows[-1]) if ref else ""), flush=True)
    tmp.cleanup()
    return rows, sweep, control


def _steady(r) -> bool:
    return r["drift_rate_x_px"] != 0 or r["drift_rate_y_px"] != 0


def summary(rows, lengths, sweep=()) -> dict:
    out = {}
    rw = [r for r in rows if not _steady(r)]
    for n in lengths:
        sel = [r for r in rw if r["n_slices"] == n]
        out[str(n)] = {"mean_rms_px": float(np.mean([r["rms_px"] for r in sel])),
                       "max_rms_px": float(np.max([r["rms_px"] for r in sel])),
                       "mean_sigma_rms_px": float(np.mean([r["sigma_rms_px"] for r in sel])),
                       "mean_within_2sigma": float(np.mean([r["within_2sigma"] for r in sel]))}
    if len(lengths) > 1:
        n = np.array(lengths, float)
        for key, name in (("mean_rms_px", "rms"), ("mean_sigma_rms_px", "sigma_rms")):
            a, logc = np.polyfit(np.log(n), np.log([out[str(v)][key] for v in lengths]), 1)
            out[f"growth_{name}"] = {"exponent": float(a), "coefficient_px": float(np.exp(logc))}
    steady = [r for r in rows if _steady(r)]
    if steady:
        out["steady_drift"] = {
            str(n): {"mean_rms_px": float(np.mean([r["rms_px"] for r in steady if r["n_slices"] == n])),
                     "per_seed_rms_px": {str(r["seed"]): r["rms_px"] for r in steady if r["n_slices"] == n},
                     "mean_within_2sigma": float(np.mean([r["within_2sigma"] for r in steady
                                                          if r["n_slices"] == n]))}
            for n in lengths}
    if sweep:
        out["steady_z_sweep"] = {
            f"z={z:g}": {group: {str(n): float(np.mean([v["rms_px"] for v in sweep if v["z"] == z and
                                                        v["n_slices"] == n and v["steady"] == st]))
                                 for n in lengths}
                         for group, st in (("random_walk_mean_rms_px", False), ("steady_mean_rms_px", True))
                         if any(v["steady"] == st for v in sweep)}
            for z in Z_SWEEP}
    out["comparison"] = comparison(rows, lengths)
    return out


def _growth(n, rms) -> dict:
    a, logc = np.polyfit(np.log(n), np.log(rms), 1)
    return {"exponent": float(a), "coefficient_px": float(np.exp(logc))}


def comparison(rows, lengths) -> dict:
    """Per method and seed group (random walk, steady drift): mean RMS error per length and
    the growth law ``rms = c * n^a`` of that mean; PyStack3D / ours error and time ratios."""
    out = {"skipped_pystack3d": not any("rms_px_pystack3d" in r for r in rows)}
    for group, steady in (("random_walk", False), ("steady_drift", True)):
        sel = [r for r in rows if _steady(r) == steady]
        if not sel:
            continue
        g = out[group] = {}
        for m, (key, label) in METHODS.items():
            if not all(key in r for r in sel):
                continue
            mean = [float(np.mean([r[key] for r in sel if r["n_slices"] == n])) for n in lengths]
            g[m] = {"label": label, "mean_rms_px": dict(zip(map(str, lengths), mean))}
            if len(lengths) > 1:
                g[m]["growth"] = _growth(np.array(lengths, float), mean)
        if "pystack3d" in g:
            g["rms_ratio_pystack3d_over_ours"] = {
                str(n): {"of_means": g["pystack3d"]["mean_rms_px"][str(n)] / g["ours"]["mean_rms_px"][str(n)],
                         "median_per_seed": float(np.median([r["rms_ratio_pystack3d_over_ours"]
                                                             for r in sel if r["n_slices"] == n]))}
                for n in lengths}
    once = [r for r in rows if r["n_slices"] == max(lengths) and "ms_per_slice_pystack3d" in r]
    if once:  # one registration per seed (at the longest length)
        out["time_ratio_pystack3d_over_ours"] = float(np.sum([r["ms_per_slice_pystack3d"] for r in once])
                                                      / np.sum([r["ms_per_slice"] for r in once]))
        out["ms_per_slice"] = {"ours": float(np.mean([r["ms_per_slice"] for r in once])),
                               "pystack3d": float(np.mean([r["ms_per_slice_pystack3d"] for r in once])),
                               "plain_chain": float(np.mean([r["ms_per_slice_plain_chain"] for r in once]))}
    return out


def print_comparison(c: dict, lengths) -> None:
    print("\nside by side, mean RMS error px vs truth (same denoised slices)")
    if c["skipped_pystack3d"]:
        print(" PyStack3D comparison skipped (not installed or --no-peer)")
    for group in ("random_walk", "steady_drift"):
        g = c.get(group)
        if not g:
            continue
        ms = [m for m in METHODS if m in g]
        print(f" {group.replace('_', ' ')}:\n  {'n_slices':>8}  " + "  ".join(f"{g[m]['label']:>17}" for m in ms)
              + ("  PyStack3D/ours" if "pystack3d" in g else ""))
        for n in lengths:
            print(f"  {n:>8}  " + "  ".join(f"{g[m]['mean_rms_px'][str(n)]:17.2f}" for m in ms)
                  + (f"  {g['rms_ratio_pystack3d_over_ours'][str(n)]['of_means']:14.1f}" if "pystack3d" in g else ""))
        if len(lengths) > 1:
            print(f"  {'growth':>8}  " + "  ".join(
                f"{g[m]['growth']['coefficient_px']:9.2f} n^{g[m]['growth']['exponent']:5.2f}" for m in ms))
    t = c.get("translation_control", {})
    if t:
        print(f" pure-translation control (seed {t['seed']}, slice 0 moved by the true shifts, "
              f"{t['n_slices']} slices): RMS whole-slice PC chain {t['rms_px_plain_chain']:.3f} px"
              + (f", PyStack3D chain {t['rms_px_pystack3d']:.3f} px" if "rms_px_pystack3d" in t else ""))
    if "time_ratio_pystack3d_over_ours" in c:
        t = c["ms_per_slice"]
        print(f" registration ms/slice: ours {t['ours']:.1f} (drift-model patches), PyStack3D "
              f"{t['pystack3d']:.1f}, plain PC chain {t['plain_chain']:.1f}; PyStack3D/ours "
              f"{c['time_ratio_pystack3d_over_ours']:.2f}x (machine shared: compare the ratio)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 30/60 slices of 96 x 128 px")
    ap.add_argument("--no-peer", action="store_true", help="skip the PyStack3D comparison")
    ap.add_argument("--shape", help="Y,X slice size in px (more grains per slice; writes "
                    "align_nocap_<Y>x<X>.json)")
    ap.add_argument("--lengths", help="comma-separated stack lengths in slices")
    a = ap.parse_args(argv)
    if a.quick:
        seeds, lengths, shape = [(41, 0.04, 0.0), (45, 0.08, 0.0), (47, 0.04, 0.3)], [30, 60], (96, 128)
    else:
        seeds = [(41, 0.04, 0.0), (42, 0.04, 0.0), (43, 0.04, 0.0), (44, 0.04, 0.0),
                 (45, 0.08, 0.0), (46, 0.08, 0.0), (47, 0.04, 0.3), (48, 0.04, 0.3),
                 (49, 0.04, (0.2, 0.2)), (50, 0.04, -0.3)]
        lengths, shape = [30, 60, 120, 240], (128, 160)
    if a.shape:
        shape = tuple(int(v) for v in a.shape.split(","))
    if a.lengths:
        lengths = sorted(int(v) for v in a.lengths.split(","))
    rows, sweep, control = run(seeds, lengths, shape, not a.no_peer)
    summ = summary(rows, lengths, sweep)
    summ["comparison"]["translation_control"] = control
    print("\nrandom-walk drift (seeds without a steady rate)")
    print(" n_slices  mean RMS px  max RMS px  mean sigma_rms px  within 2 sigma")
    for n in lengths:
        v = summ[str(n)]
        print(f" {n:>8}  {v['mean_rms_px']:11.2f}  {v['max_rms_px']:10.2f}  {v['mean_sigma_rms_px']:17.2f}"
              f"  {v['mean_within_2sigma']:14.2f}")
    for name in ("rms", "sigma_rms"):
        g = summ.get(f"growth_{name}")
        if g:
            print(f" growth of mean {name}: {g['coefficient_px']:.2f} px * n^{g['exponent']:.2f}")
    for n, v in summ.get("steady_drift", {}).items():
        print(f" steady drift, n {n}: mean RMS {v['mean_rms_px']:.2f} px (per seed "
              + ", ".join(f"{k}: {x:.2f}" for k, x in v["per_seed_rms_px"].items())
              + f"), within 2 sigma {v['mean_within_2sigma']:.2f}")
    if "steady_z_sweep" in summ:
        print("\nsteady-rate detection level z: mean RMS px (random walk | steady) per n_slices")
        for z, g in summ["steady_z_sweep"].items():
            print(f" {z:6s} " + "  ".join(
                f"{n}: {g['random_walk_mean_rms_px'][str(n)]:5.2f} | "
                f"{g.get('steady_mean_rms_px', {}).get(str(n), float('nan')):5.2f}" for n in lengths))
    print_comparison(summ["comparison"], lengths)
    OUT.mkdir(exist_ok=True)
    path = OUT / ("align_nocap{}{}.json".format("_quick" if a.quick else "",
                                                 f"_{shape[0]}x{shape[1]}" if a.shape else ""))
    path.write_text(json.dumps({"shape_yx": list(shape), "rows": rows, "summary": summ}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
