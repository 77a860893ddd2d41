"""sarviz — an interactive workbench for synthetic aperture radar (SAR) image synthesis."""

__version__ = "0.1.0"
