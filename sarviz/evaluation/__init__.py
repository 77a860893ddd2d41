"""Evaluation protocols over sets of images (as opposed to :mod:`sarviz.metrics`, one pair at a time).

:mod:`sarviz.evaluation.text` — seed 001's evaluation of a text-to-SAR model per scene label
(pooled amplitude-histogram KL, GLCM on homogeneous 64 px patches, SAR-CLIP rank and cosine).
"""
