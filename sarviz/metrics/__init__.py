"""Fidelity metrics of synthetic SAR against real Sentinel-1 (definitions: docs/metrics.md).

:mod:`sarviz.metrics.sar` holds the per-polarisation metrics, :mod:`sarviz.metrics.report`
the full comparison (:func:`~sarviz.metrics.report.compare`,
:func:`~sarviz.metrics.report.compare_results`) and its JSON/CSV/table outputs.
"""

from sarviz.metrics.sar import MetricError

__all__ = ["MetricError"]
