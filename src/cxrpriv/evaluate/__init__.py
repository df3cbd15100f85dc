"""Evaluation of anonymized releases (``cxrpriv evaluate``): every attacker and the utility on the same test
films, the privacy-utility report, and the release decision (:mod:`.decision`) that ``cxrpriv release`` reads.

Nothing is imported here: importing the package must stay cheap (every ``cxrpriv`` command imports it to
build its parser).
"""


class EvaluateInputError(ValueError):
    """An input of the evaluate stage is missing or malformed (the message names the file and why)."""
