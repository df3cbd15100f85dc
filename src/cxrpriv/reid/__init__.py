"""The verifier stage (``cxrpriv train_reid``): the re-identification attacker (a metric-learning embedder
or a siamese verifier, ``method``) that tells whether two radiographs show the same patient, and the
retrieval linkage attack built on it. It measures how re-identifiable a dataset is, and the anonymizer
trains against it. See docs/verifier.md.
"""


class ReidInputError(ValueError):
    """An ingest output the verifier cannot use; the message names the file and the reason."""


# The name under which the stage registers its trained attacker in MLflow (``--model-name``).
REGISTERED_NAME = "cxrpriv-verifier"
