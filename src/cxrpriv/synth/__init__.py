"""The synthetic benchmark cohort: radiograph-like DICOM with known identity, findings and label noise."""
