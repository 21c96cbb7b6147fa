"""Synthetic FIB-SEM sample of a hot-deformed Nd-Fe-B magnet, with known ground truth.

>>> from magtwin.synth import make_sample, write_sample
>>> s = make_sample(seed=1, shape_px=[10, 96, 96])
>>> s.stack.shape, s.truth["labels"].shape
((10, 96, 96), (10, 96, 96))

Modules: :mod:`~magtwin.synth.params` (schema, defaults, validation),
:mod:`~magtwin.synth.microstructure` (Laguerre platelet grains, easy axes),
:mod:`~magtwin.synth.render` (SEM contrast, partial volume, truth masks),
:mod:`~magtwin.synth.cap` (cap + fiducials), :mod:`~magtwin.synth.drift`,
:mod:`~magtwin.synth.artefacts` (shading, curtaining, noise),
:mod:`~magtwin.synth.sample` (:func:`make_sample`), :mod:`~magtwin.synth.output`
(:func:`write_sample`, streaming :func:`generate_files`).
"""

from magtwin.synth.output import generate_files, write_sample
from magtwin.synth.params import SCHEMA, defaults, resolve_params
from magtwin.synth.sample import SampleGenerator, SyntheticSample, make_sample

__all__ = ["make_sample", "write_sample", "generate_files", "SyntheticSample", "SampleGenerator",
           "SCHEMA", "defaults", "resolve_params"]
