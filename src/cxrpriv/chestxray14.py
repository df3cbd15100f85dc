"""The ChestX-ray14 vocabulary and table layout, shared by every stage that reads or writes its format."""

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
"""The 14 ChestX-ray14 findings in canonical order (the order of every per-finding array)."""

DATA_ENTRY_COLUMNS: tuple[str, ...] = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
)
"""The header of ChestX-ray14's ``Data_Entry_2017`` table, split at its commas as a CSV reader splits it."""

NO_FINDING = "No Finding"
"""The ChestX-ray14 label string of an image with none of the 14 findings."""
