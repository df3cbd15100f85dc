"""The classifier stage: a multi-label abnormality classifier (the utility judge), robust to label noise."""


class ClassifierInputError(ValueError):
    """An input of the classifier stage is missing or malformed (the message names the file and why)."""


# The name under which the stage registers its trained classifier in MLflow.
REGISTERED_NAME = "cxrpriv-classifier"
