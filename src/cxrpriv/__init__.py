"""cxr-privacy: measured, reproducible privacy-preserving release of chest radiograph datasets."""

__version__ = "0.1.0"
