"""Resident memory of one stage along the stack: does it grow with the slice index?

    python benchmarks/memory_trace.py segment /tmp/magtwin-imaging-bench/500x1024x1024_seed7_r2/03_align.h5
    python benchmarks/memory_trace.py grains 04_segment.h5 --image 03_align.h5 --window 100

``benchmarks/imaging.py`` compares the peak of a stage on the whole stack with its peak on the
first fifth; a stage whose memory rises over its first slices (the C allocator reaching its
steady state, worker pages diverging from the parent after the fork) and then stays flat
shows a growth there that a longer stack does not continue. This runs the stage once, through
the ``magtwin`` command line (default config), samples its memory every 0.2 s - the stage's
RSS plus the unique set size of its worker processes, ``imaging.stage_memory`` - reads the
slice it has reached from its progress log (every 50 slices), and reports the peak and the
median per window of slices. The stage's output goes to a temporary folder and is deleted.
Writes ``benchmarks/out/memory_trace_<stage>.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from imaging import stage_memory

OUT = Path(__file__).resolve().parent / "out"
PROGRESS = re.compile(r": slice (\d+)/(\d+)")


def trace(argv: list[str], stage: str) -> tuple[np.ndarray, int]:
    """Run ``argv``; samples ``(slice reached, stage RSS MiB, RSS + workers' USS MiB)``."""
    import psutil

    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    reached = [0, 0]

    def follow() -> None:  # the stage's progress lines (its main loop, not sub-steps)
        for line in proc.stderr:
            m = PROGRESS.search(line)
            if m and f"{stage}: slice" in line:
                reached[:] = int(m.group(1)), int(m.group(2))

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    ps, rows = psutil.Process(proc.pid), []
    while proc.poll() is None:
        try:
            main, total = stage_memory(ps)
            rows.append((reached[0], main / 2 ** 20, total / 2 ** 20))
        except psutil.Error:
            pass
        time.sleep(0.2)
    t.join(timeout=5)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed with exit code {proc.returncode}")
    return np.asarray(rows).reshape(-1, 3), reached[1]


def windows(rows: np.ndarray, nz: int, width: int) -> list[dict]:
    """Peak and median memory per window of ``width`` slices (by the slice last reported)."""
    out = []
    for a in range(0, nz, width):
        sel = (rows[:, 0] >= a) & (rows[:, 0] < a + width)
        if sel.any():
            out.append({"slices": [a, min(a + width, nz)],
                        "peak_MiB": float(rows[sel, 2].max()), "median_MiB": float(np.median(rows[sel, 2])),
                        "stage_process_median_MiB": float(np.median(rows[sel, 1]))})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["denoise", "align", "segment", "grains"])
    ap.add_argument("input", type=Path)
    ap.add_argument("--image", type=Path, help="grains: the aligned stack (03_align.h5)")
    ap.add_argument("--window", type=int, default=100, help="slices per window")
    a = ap.parse_args(argv)
    magtwin = Path(sys.executable).with_name("magtwin")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(magtwin), a.stage, str(a.input), "-o", str(Path(tmp) / "out.h5")]
        if a.stage == "grains" and a.image:
            cmd += ["--image", str(a.image)]
        rows, nz = trace(cmd, a.stage)
    win = windows(rows, nz, a.window)
    late = [w["peak_MiB"] for w in win[1:]]
    slope = (float(np.polyfit([np.mean(w["slices"]) for w in win[1:]], late, 1)[0] * 100)
             if len(late) > 1 else float("nan"))
    print(f"\n{a.stage} on {a.input} ({nz} slices): memory per window of {a.window} slices")
    print("  slices      peak MiB  median MiB  (stage process median)")
    for w in win:
        print(f"  {w['slices'][0]:4d}-{w['slices'][1]:<5d} {w['peak_MiB']:9.0f} {w['median_MiB']:11.0f}"
              f"  ({w['stage_process_median_MiB']:.0f})")
    print(f"  overall peak {rows[:, 2].max():.0f} MiB; trend of the window peaks after the first "
          f"window: {slope:+.1f} MiB per 100 slices")
    OUT.mkdir(exist_ok=True)
    path = OUT / f"memory_trace_{a.stage}.json"
    path.write_text(json.dumps({"stage": a.stage, "input": str(a.input), "n_slices": nz,
                                "window_slices": a.window, "windows": win,
                                "peak_MiB": float(rows[:, 2].max()),
                                "window_peak_trend_MiB_per_100_slices_after_first": slope}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
