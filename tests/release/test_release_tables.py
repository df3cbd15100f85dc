"""The release's Data_Entry_2017 labels: an unlabeled image's Finding Labels is empty, not 'No Finding'."""

from __future__ import annotations

import pandas as pd

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.release.tables import finding_labels


def test_unlabeled_rows_have_empty_finding_labels():
    manifest = pd.DataFrame({f: pd.array([0, 0, None], dtype="Int64") for f in FINDINGS})
    manifest.loc[1, "Mass"] = 1
    manifest["labeled"] = [True, True, False]
    assert finding_labels(manifest) == ["No Finding", "Mass", ""]
    assert finding_labels(manifest.drop(columns="labeled").iloc[:2]) == ["No Finding", "Mass"]
