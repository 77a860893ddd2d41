"""Training datasets: patches cut from scenes or fetched from the sources, splits, land cover,
captions for text-to-SAR, and readers (a torch ``Dataset``, the emulator refit).

The folder layout is ``sarviz-patches/1`` (see :mod:`sarviz.datasets.layout` and
docs/datasets.md); trainers, the emulator refit and batch evaluation read it.
"""
