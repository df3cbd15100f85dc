"""Applying an anonymizer to an ingested dataset (``cxrpriv anonymize``): the trained generator of
``train_anonymizer``, DP-Pix, a random smooth warp, or none, by name. The output is a dataset in exactly the
ingest format (:mod:`cxrpriv.dataset`: same manifest rows and columns, same splits, image ids, shards and
offsets), so the verifier and classifier stages, the evaluate stage and the release read it unchanged.

Modules: :mod:`.config` (its typed params), :mod:`.methods` (the anonymizers by name, at any image size),
:mod:`.stage` (the shard-by-shard stream), :mod:`.run` (outputs, metrics, plot, MLflow) and :mod:`.command`.
Nothing is imported here (every ``cxrpriv`` command imports the package to build its parser).
"""


class AnonymizeInputError(ValueError):
    """An input of the anonymize stage is missing or malformed (the message names the file and why)."""
