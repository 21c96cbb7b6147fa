"""PyStack3D, the peer tool of the imaging benchmarks, run in its own venv.

PyStack3D needs numpy>=2 and magtwin numpy<2, so it runs in ``benchmarks/.venv-peers``
(created on first use with ``pip install pystack3d``, :func:`ensure_peer`) on stacks passed
as .npy files. :data:`CHAIN_CODE` is the source of its chained slice-to-slice registration
(``registration_calculation.tmat_calculation`` on consecutive slices, translation,
cumulated with ``utils.cumdot``) converted to magtwin's shift convention; it is executed in
the peer venv as the head of a script (``benchmarks/imaging.py``'s ``PEER_CODE``,
:data:`STACKS_CODE`). Used by ``benchmarks/imaging.py`` and ``benchmarks/align_nocap.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-peers"

# Runs inside the peer venv (numpy 2).
CHAIN_CODE = r"""
import time
import numpy as np
from pystack3d.registration_calculation import tmat_calculation
from pystack3d.utils import cumdot


def sign_convention():
    # factors (cy, cx) with (dy, dx) = (cy * t[1, 2], cx * t[0, 2]), calibrated on a known
    # shift: content moved by (+3, -2) <=> the moved slice at (y, x) shows the reference's
    # (y - 3, x + 2), magtwin shift (-3, +2)
    rng = np.random.default_rng(0)
    img = np.cumsum(np.cumsum(rng.normal(size=(64, 64)), 0), 1)
    mov = np.roll(img, (3, -2), axis=(0, 1))
    t = tmat_calculation(img, mov)[0]
    return np.sign(-3.0 / t[1, 2]), np.sign(2.0 / t[0, 2])


def chained_shifts(stack, r0=0, r1=None):
    # consecutive slices (rows r0:r1) registered and cumulated: shifts (n, 2) in magtwin's
    # (dy, dx) convention, registration seconds, sign convention
    sy, sx = sign_convention()  # (cy, cx)
    t0 = time.perf_counter()
    tm = [np.identity(3)[None]] + [tmat_calculation(np.asarray(stack[k - 1, r0:r1], float),
                                                    np.asarray(stack[k, r0:r1], float))
                                   for k in range(1, len(stack))]
    cum = cumdot(np.asarray([m[0] for m in tm]))
    t_reg = time.perf_counter() - t0
    shifts = np.stack([sy * cum[:, 1, 2], sx * cum[:, 0, 2]], axis=1)
    return shifts, t_reg, (float(sy), float(sx))
"""

# Whole slices of every stack file named on the command line: one JSON line each.
STACKS_CODE = CHAIN_CODE + r"""
import json, sys
for path in sys.argv[1:]:
    shifts, t_reg, sign = chained_shifts(np.load(path, mmap_mode="r"))
    print(json.dumps({"path": path, "shifts_px": shifts.tolist(), "t_register_s": t_reg,
                      "n_register": len(shifts) - 1, "sign": sign}), flush=True)
"""


def ensure_peer() -> Path | None:
    """The peer venv's python, created with PyStack3D on first use; None if that fails."""
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    if subprocess.run([str(py), "-c", "import pystack3d"], capture_output=True).returncode != 0:
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "pystack3d"])
        if r.returncode != 0:
            return None
    return py


def chained_registration(paths: list[Path]) -> dict[str, dict] | None:
    """PyStack3D's chained whole-slice registration of each (z, y, x) .npy stack: per path,
    ``shifts_px`` (z, 2) relative to slice 0 in magtwin's convention, ``t_register_s`` and
    ``n_register`` (pairs); None (with the reason printed) if the peer cannot run."""
    py = ensure_peer()
    if py is None:
        print("PyStack3D could not be installed: comparison skipped")
        return None
    r = subprocess.run([str(py), "-c", STACKS_CODE, *map(str, paths)], capture_output=True, text=True)
    if r.returncode != 0:
        print("PyStack3D run failed: comparison skipped\n" + r.stderr[-2000:])
        return None
    return {d["path"]: d for d in map(json.loads, r.stdout.strip().splitlines())}
