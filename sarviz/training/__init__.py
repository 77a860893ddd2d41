"""Trainers (SAR-CLIP here; the diffusion trainers live beside it)."""
