"""MPI-parallel PETSc finite-element micromagnetics (stage 8, ``simulate``).

Public API: :func:`simulate_curve` (mesh + materials + field sweep -> :class:`Curve`) and
:func:`write_curve_artefact`; ``magtwin simulate --help`` for the command line.

Modules (one job each): ``fem`` (P1 gradients, volumes, lumped masses), ``partition``
(recursive coordinate bisection, contiguous renumbering), ``assemble`` (element matrices ->
PETSc MPIAIJ, owned rows only), ``materials`` (materials file -> per-region parameters and
easy axes), ``state`` (distributed discretisation + magnetisation Vec), one module per field
term (``exchange``, ``anisotropy``, ``zeeman``, ``demag`` with ``airshell``, or the
hybrid FEM/BEM ``fembem``), ``effective``
(sum of the terms, energies), ``minimize`` (projected Barzilai-Borwein), ``curve`` (field
sweep with jump refinement), ``checkpoint``, ``snapshots`` (output artefact + XDMF),
``run`` (file-level entry point), ``pointconfig`` (sweep point -> solver inputs),
``shapes`` (box/sphere test meshes).
"""

from magtwin.micromag.curve import Curve, simulate_curve  # noqa: F401
from magtwin.micromag.snapshots import write_curve_artefact  # noqa: F401
