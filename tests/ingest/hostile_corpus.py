"""A deterministic hostile-input corpus for the ingest stage (no randomness: the same bytes every time).

``build_hostile_corpus(root)`` writes, next to a few clean synthetic radiographs:

- **PHI everywhere** in otherwise ingestible files, each file its own invented patient: free text
  (Image Comments, descriptions), nested sequences (request attributes, SR-style content, a 30-level chain
  of modifier codes in a kept sequence with a name as the bottom Code Value), code meanings and coding
  scheme versions of kept code items, private tags (top level and inside kept items), unassigned standard
  tags, LUT and window explanations, image type and device strings, overlay descriptions, the file's own
  values in kept attributes (Rescale Type, Patient Orientation) in other case and separators, a UTF-8
  name, a 3-letter family name as a word, and the patient's name and MRN in folder and file names;
- **structure bombs**: zero bytes, garbage, a bare preamble, a text file full of the patient's name, a
  2,000-level nested sequence, an element claiming 4 GB, 20,000 private elements, a truncated file;
- **resource bombs**: 65535 x 65535 frames (native, RLE, JPEG 2000 codestream), 100,000 declared frames,
  a deflate bomb, a PNG declaring 13,000 x 13,000 RGBA;
- **semantic traps**: a patient ID of spaces, an impossible bit depth, a PNG with no labels row, a
  DICOM-looking PNG name, a colour image;
- **entries that are not files**: symlink loops, dangling and external links, a link to a folder, a FIFO;
- a file the test makes its worker die on (``crash_sigkill.dcm``; see test_ingest_workers.py).

``secrets`` holds every planted identifying string (in the forms a leak would take).
"""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence

from cxrpriv.ingest.decode import MIB
from cxrpriv.synth.dicom_writer import (
    PatientStudyHeader,
    PixelEncoding,
    build_radiograph_dataset,
    write_radiograph,
)
from tests.ingest.test_ingest_decode import _header
from tests.ingest.test_ingest_listing import hostile_entries

CRASH_FILE = "crash_sigkill.dcm"


@dataclass(frozen=True)
class Identity:
    family: str
    given: str
    patient_id: str
    accession: str
    institution: str
    physician: str
    birth: dt.date

    @property
    def secrets(self) -> set[str]:
        return {
            self.family,
            self.given,
            self.patient_id,
            self.accession,
            self.institution,
            self.physician.split("^")[0],
            self.birth.strftime("%Y%m%d"),
        }


IDENTITIES = (
    Identity("QUETZALCOATL", "ZEPHYRINE", "MRN-70419283", "ACC99887766", "Bramblewood Infirmary",
             "VANTONGEREN^OSWALDO", dt.date(1951, 6, 30)),
    Identity("KOWALCZYK", "ISOLDE", "44017733", "ACC31415926", "Thistledown Clinic",
             "ABERNATHY^GWENDOLYN", dt.date(1938, 11, 2)),
    Identity("ÑÚÑEZBÁRCENA", "ZÓFIA", "PX-55512345", "ACC27182818", "Hôpital Sainte-Ermengarde",
             "LEEUWENHOEK^MARCELLINUS", dt.date(1977, 2, 14)),
)  # fmt: skip


@dataclass
class HostileCorpus:
    root: Path
    elsewhere: Path  # outside the source: the target of links pointing out of it
    secrets: set[str] = field(default_factory=set)


def image(seed: int) -> np.ndarray:
    y, x = np.mgrid[0:128, 0:128] / 127.0
    ripple = 0.02 * np.sin(7 * x + seed) * np.cos(5 * y)
    return np.clip(0.2 + 0.5 * x * (1 - y) + ripple, 0, 1).astype(np.float32)


def encoding(syntax: str = "explicit_le") -> PixelEncoding:
    return PixelEncoding("MONOCHROME2", 12, 1.0, 0.0, "window", syntax, None)


def header(identity: Identity, n: int) -> PatientStudyHeader:
    return replace(
        _header(),
        patient_name=f"{identity.family}^{identity.given}",
        patient_id=identity.patient_id,
        birth_date=identity.birth,
        accession_number=identity.accession,
        institution_name=identity.institution,
        referring_physician=identity.physician,
        study_instance_uid=f"2.25.{9000 + n}",
        series_instance_uid=f"2.25.{9100 + n}",
        sop_instance_uid=f"2.25.{9200 + n}",
    )


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99LOCAL", meaning
    return item


def plant_phi(ds: Dataset, who: Identity) -> None:
    """The identity in every place an archive has been seen to hide one (see the module doc)."""
    name = f"{who.given} {who.family}"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageComments = f"Patient {name}, {who.patient_id}, born {who.birth:%d/%m/%Y}"
    ds.StudyDescription = f"XR CHEST PA {who.family}"
    ds.ImageType = ["ORIGINAL", "PRIMARY", who.family[:16]]
    ds.Manufacturer = who.institution
    ds.DeviceSerialNumber = who.patient_id
    ds.WindowCenterWidthExplanation = f"set for {who.family}"
    ds.RescaleType = who.family.lower()  # kept attribute: the tripwire must blank it
    ds.PatientOrientation = ["L", who.patient_id.replace("-", "")[:16]]  # kept, the ID without separators
    ds.add_new(0x0018ABCD, "LO", name)  # an unassigned standard tag
    ds.add_new(0x60000022, "LO", f"overlay of {name}")  # Overlay Description
    request = Dataset()
    request.RequestedProcedureDescription = f"chest for {name}"
    request.ScheduledProtocolCodeSequence = Sequence([code("P1", f"protocol of {who.family}")])
    ds.RequestAttributesSequence = Sequence([request])
    content = Dataset()
    content.TextValue = f"{name} {who.accession}"
    content.ContentSequence = Sequence([Dataset()])
    content.ContentSequence[0].TextValue = who.physician
    ds.ContentSequence = Sequence([content])
    region = ds.AnatomicRegionSequence[0]
    region.CodeMeaning = f"chest of {who.family}"  # not the registered meaning
    region.CodingSchemeVersion = who.given[:16]  # a kept code attribute: tripwire
    chain = region
    for _ in range(30):  # a deep chain of kept modifier codes, a name at the bottom
        modifier = code("T-D3000", "Chest")
        chain.AnatomicRegionModifierSequence = Sequence([modifier])
        chain = modifier
    chain.CodeValue = who.family[:16]
    block = ds.private_block(0x0011, "HOSPITAL PHI", create=True)
    block.add_new(0x10, "LO", name)
    block.add_new(0x11, "LT", f"MRN {who.patient_id} ACC {who.accession}")
    inner = region.private_block(0x0013, "VENDOR NOTES", create=True)
    inner.add_new(0x01, "LO", who.physician)


def phi_files(root: Path) -> set[str]:
    """One ingestible file per identity, under folders and file names made of its name and MRN."""
    secrets: set[str] = set()
    for n, who in enumerate(IDENTITIES):
        ds = build_radiograph_dataset(image(n), header(who, n), encoding())
        plant_phi(ds, who)
        folder = root / f"{who.family}_{who.given}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{who.patient_id}_{who.accession}.dcm").write_bytes(to_bytes(ds))
        secrets |= who.secrets | {f"{who.given} {who.family}"}
    # A 3-letter family name, as a whole word in a kept attribute (the tripwire's short-name rule).
    lee = Identity(
        "LEE", "ARCHIBALDINE", "77331100", "ACC11235813", "Wrenfield", "ROE^T", dt.date(1960, 5, 5)
    )
    ds = build_radiograph_dataset(image(7), header(lee, 7), encoding())
    ds.RescaleType = "OD LEE"
    (root / "lee.dcm").write_bytes(to_bytes(ds))
    return secrets | (lee.secrets - {"LEE", "ROE"}) | {"OD LEE"}


def structure_bombs(root: Path, clean: bytes) -> None:
    (root / "empty.dcm").write_bytes(b"")
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 64)
    (root / "preamble_only.dcm").write_bytes(bytes(128) + b"DICM")
    (root / "truncated.dcm").write_bytes(clean[: len(clean) // 3])
    (root / "notes.txt").write_text("QUETZALCOATL ZEPHYRINE MRN-70419283 (not an image)\n")
    meta = clean[: 132 + 12 + struct.unpack("<I", clean[140:144])[0]]  # preamble, DICM, group 2
    # (0008,1140) Referenced Image Sequence nested 2,000 deep, undefined lengths.
    open_item = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    close_item = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    (root / "deep_nesting.dcm").write_bytes(meta + open_item * 2000 + close_item * 2000)
    # An element that claims 4 GB of value in a file of a few KB.
    liar = struct.pack("<HH2sHI", 0x0008, 0x0016, b"UN", 0, 0xFFFFFFF0)
    (root / "length_liar.dcm").write_bytes(meta + liar + b"x" * 100)
    many = pydicom.dcmread(io.BytesIO(clean))
    for group in range(0x0011, 0x0011 + 2 * 84, 2):  # 84 private groups of 239 elements: 20,076
        block = many.private_block(group, f"MANY{group}", create=True)
        for element in range(0x10, 0xFF):
            block.add_new(element, "SH", "x")
    (root / "many_elements.dcm").write_bytes(to_bytes(many))


def png(
    width: int, height: int, color_type: int, rows: bytes | None = None, written: int | None = None
) -> bytes:
    """A PNG declaring ``width`` x ``height``, holding ``written`` (default: all) copies of ``rows`` (one
    filtered scan line; zeros by default), compressed as a stream."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    line = rows if rows is not None else bytes(1 + width * channels)
    compressor = zlib.compressobj(9)
    body = bytearray()
    for _ in range(height if written is None else written):
        body += compressor.compress(line)
    body += compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(body)) + chunk(b"IEND", b"")


def deflate_bomb(payload_bytes: int) -> bytes:
    """A deflated file whose data set holds ``payload_bytes`` of zeros (built without holding them)."""
    meta = build_radiograph_dataset(image(0), _header(), encoding("deflated_le")).file_meta
    meta.TransferSyntaxUID = dicom_uid.DeflatedExplicitVRLittleEndian
    head = DicomBytesIO()
    head.write(bytes(128) + b"DICM")
    write_file_meta_info(head, meta)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = bytearray(compressor.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, payload_bytes)))
    zeros = bytes(MIB)
    for _ in range(payload_bytes // MIB):
        body += compressor.compress(zeros)
    body += compressor.flush()
    return head.getvalue() + bytes(body)


def resource_bombs(root: Path, clean_rle: bytes, clean_j2k: bytes) -> None:
    for name, data in (("huge_native.dcm", build_radiograph_dataset(image(1), _header(), encoding())),
                       ("huge_rle.dcm", pydicom.dcmread(io.BytesIO(clean_rle)))):  # fmt: skip
        data.Rows = data.Columns = 65535
        (root / name).write_bytes(to_bytes(data))
    frames = build_radiograph_dataset(image(2), _header(), encoding())
    frames.NumberOfFrames = 100000
    (root / "many_frames.dcm").write_bytes(to_bytes(frames))
    siz = clean_j2k.index(b"\xff\x4f\xff\x51") + 8
    (root / "j2k_bomb.dcm").write_bytes(
        clean_j2k[:siz] + struct.pack(">II", 65535, 65535) + clean_j2k[siz + 8 :]
    )
    (root / "deflate_bomb.dcm").write_bytes(deflate_bomb(64 * MIB))
    (root / "png_bomb.png").write_bytes(png(13000, 13000, 6))
    (root / "png_declares_4_gigapixels.png").write_bytes(png(65535, 65535, 0, written=16))


def semantic_traps(root: Path, clean: bytes) -> None:
    blank_id = pydicom.dcmread(io.BytesIO(clean))
    blank_id.PatientID = "    "
    (root / "blank_patient_id.dcm").write_bytes(to_bytes(blank_id))
    bits = pydicom.dcmread(io.BytesIO(clean))
    bits.BitsStored, bits.HighBit = 20, 19
    (root / "bits_stored_20.dcm").write_bytes(to_bytes(bits))
    (root / "unlabeled_photo.png").write_bytes(png(64, 64, 0, rows=b"\x00" + bytes(range(64))))
    (root / "looks_like_dicom.dcm").write_bytes(png(64, 64, 0, rows=b"\x00" + bytes(range(64))))
    line = b"\x00" + bytes(v for x in range(64) for v in (x, 255 - x, 0))
    (root / "colour.png").write_bytes(png(64, 64, 2, rows=line))


def build_hostile_corpus(root: Path) -> HostileCorpus:
    """Write the corpus under ``root`` (links out of it point into a sibling folder)."""
    root.mkdir(parents=True)
    corpus = HostileCorpus(root, root.parent / f"{root.name}-elsewhere")
    syntaxes = ("explicit_le", "rle_lossless", "j2k_lossless")
    clean = []
    for i, syntax in enumerate(syntaxes):
        path = root / f"clean_{i}.dcm"
        write_radiograph(
            path, image(10 + i), replace(_header(), sop_instance_uid=f"2.25.{50 + i}"), encoding(syntax)
        )
        clean.append(path.read_bytes())
    corpus.secrets |= phi_files(root)
    structure_bombs(root, clean[0])
    resource_bombs(root, clean[1], clean[2])
    semantic_traps(root, clean[0])
    (root / CRASH_FILE).write_bytes(clean[0])
    hostile_entries(root, corpus.elsewhere)
    (root / "QUETZALCOATL_link.dcm").symlink_to(next(root.glob("QUETZALCOATL_*/*.dcm")).relative_to(root))
    return corpus
