"""The verifier stage (``cxrpriv train_reid``): a siamese network that tells whether two radiographs show the
same patient, and the retrieval linkage attack built on it. It is the attacker: it measures how
re-identifiable a dataset is, and the anonymizer trains against it. See docs/verifier.md.
"""


class ReidInputError(ValueError):
    """An ingest output the verifier cannot use; the message names the file and the reason."""
