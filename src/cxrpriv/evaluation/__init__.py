"""Metrics with uncertainty, shared by the model stages and the privacy-utility evaluation."""
