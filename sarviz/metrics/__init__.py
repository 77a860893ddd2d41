"""Fidelity metrics of synthetic SAR against real Sentinel-1 (definitions: docs/metrics.md).

:mod:`sarviz.metrics.sar` holds the per-polarisation metrics, :mod:`sarviz.metrics.report`
the full comparison (:func:`~sarviz.metrics.report.compare`,
:func:`~sarviz.metrics.report.compare_results`) and its JSON/CSV/table outputs,
:mod:`sarviz.metrics.protocols` seed 001's evaluation protocol (KL per scene category,
GLCM on amplitude in homogeneous patches) and :mod:`sarviz.metrics.provenance` what the
metrics read from provenance (the model's calibration, single acquisition or composite).
"""

from sarviz.metrics.sar import MetricError

__all__ = ["MetricError"]
