"""Seed 003 cross-sensor migration: attention distillation with SAR speckle and spectrum losses.

Modules: :mod:`~sarviz.migration.attention` (caching attention processor, layer sets),
:mod:`~sarviz.migration.losses` (L_AD, L_cnt, L_sp, L_f), :mod:`~sarviz.migration.images`
(content/style reader, the migrated GeoTIFF), :mod:`~sarviz.migration.migrate` (the
optimisation and the image transformer). Method and choices: ``docs/cross-sensor.md``.
"""
