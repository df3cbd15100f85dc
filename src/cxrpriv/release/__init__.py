"""The release stage (``cxrpriv release``): an anonymized dataset in the ingest format to a publishable one,
one DICOM file per image with labels, splits, checksums, the evaluation report and the release decision, after
a leftover-PHI audit of every file written (:mod:`.audit`).

Nothing heavy is imported here: every ``cxrpriv`` command imports this package to build its parser.
"""

RELEASE_MANIFEST_FILE = "release_manifest.json"
AUDIT_REPORT_FILE = "audit.json"
DICOM_DIR = "dicom"
LABELS_FILE = "Data_Entry_2017.csv"
SPLITS_DIR = "splits"
CHECKSUMS_FILE = "SHA256SUMS"
REPORT_DIR = "evaluation"
COMPLETE, BLOCKED, REFUSED = "complete", "blocked", "refused"


class ReleaseInputError(ValueError):
    """An input of the release stage is missing, malformed or does not fit (the message says which)."""


class ReleaseRefused(RuntimeError):
    """The release decision failed and no --force-release-reason was given."""


class ReleaseBlocked(RuntimeError):
    """The leftover-PHI audit found something: nothing was released (the audit report says where)."""
