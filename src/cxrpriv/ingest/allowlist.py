"""The attributes the ``allowlist`` de-identification policy keeps: what a CR/DX image needs to be read and
used, nothing else.

Every other attribute is removed, at any depth: unknown, unassigned, retired and private ones, free text,
device and image-type strings, explanations, and every sequence not listed here. Attributes that an enabled
PS3.15 Annex E option explicitly retains (its action K or C where the Basic Profile's is not) are kept in
addition, with that option's action; see :mod:`cxrpriv.ingest.deid`. The Annex E table stays the floor: an
attribute listed here whose Annex E action is X is still removed, Z is still emptied and U still remapped.

``TOP_LEVEL`` lists the attributes kept in the dataset itself; ``ITEMS`` the attributes kept in the items of
each listed sequence (sequences nest: their own sequences have their own entry). A Code Meaning is kept only
when it is the meaning the DICOM content mapping resource registers for that code (pydicom's concept
dictionaries): free text typed into a code item never survives.
"""

from __future__ import annotations

import functools
from typing import cast

from pydicom.datadict import tag_for_keyword
from pydicom.tag import BaseTag

# Groups of keywords, each with why it stays.
IDENTITY = (
    "SpecificCharacterSet",  # how the kept text is encoded
    "SOPClassUID",  # what kind of object this is (a registered UID, kept)
    "SOPInstanceUID",  # remapped (U): keyed, consistent across files
    "StudyInstanceUID",  # remapped (U)
    "SeriesInstanceUID",  # remapped (U)
    "PatientID",  # replaced by the keyed pseudonym
    "PatientName",  # replaced by the keyed pseudonym
    "Modality",
)
IMAGE_PIXEL = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PlanarConfiguration",
    "PixelAspectRatio",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "NumberOfFrames",
)
GEOMETRY = (
    "PixelSpacing",
    "ImagerPixelSpacing",
    "NominalScannedPixelSpacing",
    "PixelSpacingCalibrationType",
    "EstimatedRadiographicMagnificationFactor",
    "DistanceSourceToDetector",
    "DistanceSourceToPatient",
    "PatientOrientation",
    "ImageLaterality",
    "Laterality",
    "FieldOfViewShape",
    "FieldOfViewDimensions",
)
GRAYSCALE = (
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",  # the values; Window Center & Width Explanation is free text and goes
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "PresentationLUTShape",
    "PixelIntensityRelationship",
    "PixelIntensityRelationshipSign",
    "PresentationIntentType",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "BurnedInAnnotation",
    "RecognizableVisualFeatures",
)
VIEW_AND_BODY_PART = (
    "ViewPosition",
    "ViewCodeSequence",
    "BodyPartExamined",
    "AnatomicRegionSequence",
)
TECHNIQUE = (
    "KVP",
    "ExposureTime",
    "ExposureTimeInms",
    "ExposureTimeInuS",
    "XRayTubeCurrent",
    "XRayTubeCurrentInmA",
    "XRayTubeCurrentInuA",
    "Exposure",
    "ExposureInmAs",
    "ExposureInuAs",
    "ExposureControlMode",
    "FocalSpots",
    "Grid",
    "FilterType",
    "AnodeTargetMaterial",
    "BodyPartThickness",
    "RelativeXRayExposure",
    "ExposureIndex",
    "TargetExposureIndex",
    "DeviationIndex",
    "Sensitivity",
    "DetectorType",
    "ImageAndFluoroscopyAreaDoseProduct",
    "EntranceDoseInmGy",
)
# Code Sequence Macro (PS3.3 Table 8.8-1): the code itself, never free text beside it.
CODE_ITEM = (
    "CodeValue",
    "CodingSchemeDesignator",
    "CodingSchemeVersion",
    "CodeMeaning",  # only the registered meaning of the code (see module docstring)
    "LongCodeValue",
    "URNCodeValue",
)
LUT_ITEM = ("LUTDescriptor", "LUTData")  # LUT Explanation is free text and goes
ITEM_KEYWORDS = {
    "ViewCodeSequence": (*CODE_ITEM, "ViewModifierCodeSequence"),
    "ViewModifierCodeSequence": CODE_ITEM,
    "AnatomicRegionSequence": (*CODE_ITEM, "AnatomicRegionModifierSequence"),
    "AnatomicRegionModifierSequence": CODE_ITEM,
    "ModalityLUTSequence": (*LUT_ITEM, "ModalityLUTType"),
    "VOILUTSequence": LUT_ITEM,
}
GROUPS = {
    "identity (remapped or replaced)": IDENTITY,
    "image pixel description": IMAGE_PIXEL,
    "geometry": GEOMETRY,
    "grayscale pipeline": GRAYSCALE,
    "view and body part": VIEW_AND_BODY_PART,
    "acquisition technique": TECHNIQUE,
}
# BaseTag, as a dataset's own keys are: these index its elements directly.
CODE_MEANING = BaseTag(0x00080104)
CODE_VALUE = BaseTag(0x00080100)
CODING_SCHEME = BaseTag(0x00080102)
# Old designators of the same coding schemes.
SCHEME_ALIASES = {"SRT": "SCT", "SNM3": "SCT"}


def keyword_tag(keyword: str) -> BaseTag:
    """The tag of a DICOM keyword; KeyError names a keyword the dictionary does not know."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"{keyword} is not a DICOM keyword")
    return BaseTag(tag)


def _tags(keywords: tuple[str, ...]) -> frozenset[int]:
    return frozenset(int(keyword_tag(keyword)) for keyword in keywords)


TOP_LEVEL = _tags(tuple(k for group in GROUPS.values() for k in group))
ITEMS = {int(keyword_tag(seq)): _tags(keywords) for seq, keywords in ITEM_KEYWORDS.items()}
# Items of a sequence that an enabled Annex E option retains (e.g. Institution Code Sequence under Retain
# Institution Identity) keep the code, as well as the attributes the option retains.
RETAINED_ITEM = _tags(CODE_ITEM)


@functools.cache
def registered_meanings() -> dict[tuple[str, str], frozenset[str]]:
    """(coding scheme, code value) -> the registered meanings, casefolded (pydicom's concept dictionaries)."""
    from pydicom.sr._concepts_dict import concepts

    # mypy infers pydicom's generated table as dict[str, dict[str, object]]; this is its real layout.
    concepts_by_scheme = cast(dict[str, dict[str, dict[str, tuple[str, list[int]]]]], concepts)
    index: dict[tuple[str, str], set[str]] = {}
    for scheme, names in concepts_by_scheme.items():
        for codes in names.values():
            for code, (meaning, _cids) in codes.items():
                index.setdefault((scheme, code), set()).add(meaning.casefold())
    return {key: frozenset(value) for key, value in index.items()}


def is_registered_meaning(scheme: str, code: str, meaning: str) -> bool:
    scheme = scheme.strip().upper()
    scheme = SCHEME_ALIASES.get(scheme, scheme)
    known = registered_meanings().get((scheme, code.strip()))
    return known is not None and " ".join(meaning.split()).casefold() in known
