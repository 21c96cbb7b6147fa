"""MPI-parallel PETSc finite-element micromagnetics (stage 8, ``simulate``).

Public API: :func:`simulate_curve` (mesh + materials + field sweep -> :class:`Curve`) and
:func:`write_curve_artefact`; see ``magtwin simulate --help`` for the command line.
"""

from magtwin.micromag.curve import Curve, simulate_curve  # noqa: F401
from magtwin.micromag.snapshots import write_curve_artefact  # noqa: F401
