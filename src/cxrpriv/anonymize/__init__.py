"""Learned anonymization of chest radiographs: building blocks of the anonymizer stage (the stage, its CLI
and training loop are to come and will import these).

- :mod:`.warp`: identity grid, bounded and smoothed displacement fields, the differentiable warp;
- :mod:`.generator`: the U-Net that proposes a displacement field, and the :class:`Anonymizer` module;
- :mod:`.baselines`: DP-Pix and a random smooth warp at the same bound;
- :mod:`.privacy_loss`: the published privacy term and rank-based terms that only a lower AUC satisfies;
- :mod:`.noise`: per-image seeded randomness, so an image's result does not depend on its batch.

Nothing is imported here: importing the package must stay cheap.
"""
