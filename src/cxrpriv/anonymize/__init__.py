"""Learned anonymization of chest radiographs (``cxrpriv train_anonymizer``): a generator warps each film by a
bounded, smooth displacement so that a re-identification attacker cannot link it to the patient's other
films while the abnormality classifier still reads it.

Building blocks:

- :mod:`.warp`: identity grid, bounded and smoothed displacement fields, the differentiable warp;
- :mod:`.generator`: the U-Net that proposes a displacement field, and the :class:`Anonymizer` module;
- :mod:`.baselines`: DP-Pix and a random smooth warp at the same bound;
- :mod:`.privacy_loss`: the published privacy term and rank-based terms that only a lower AUC satisfies;
- :mod:`.noise`: per-image seeded randomness, so an image's result does not depend on its batch.

The stage: :mod:`.config` (its typed params), :mod:`.data` (ingest films, the trained verifier and
classifier, the label-noise channel), :mod:`.adversarial` (batches, the two-player step, validation),
:mod:`.stage` (the stage function), :mod:`.model` (``load_anonymizer``), :mod:`.report` (plots),
:mod:`.run` (the run function) and :mod:`.command` (the CLI spec).

Nothing is imported here: importing the package must stay cheap (every ``cxrpriv`` command imports it to
build its parser).
"""


class AnonymizerInputError(ValueError):
    """An input of the anonymizer stage is missing or malformed (the message names the file and why)."""


# The name under which the stage registers its trained generator in MLflow.
REGISTERED_NAME = "cxrpriv-anonymizer"
