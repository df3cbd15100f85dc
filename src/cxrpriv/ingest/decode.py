"""Pixel decoding: stored values to a display-oriented float image (higher = brighter), at a working size.

Steps, in the order PS3.3 defines the grayscale pipeline:

1. Stored values. Native little-endian unsigned data is read straight from the Pixel Data bytes (the common
   case, and 10x cheaper than the generic path); JPEG 2000 is decoded at a reduced resolution by Pillow when
   the stored image is at least twice the working size (the wavelet levels already hold the downsampled
   image, so the full-resolution decode is skipped); everything else goes through pydicom's ``pixel_array``
   with the installed plugins (pylibjpeg-openjpeg for JPEG 2000, pylibjpeg-rle, python-gdcm for JPEG-LS and
   JPEG lossless). All of them are permissively licensed.
2. Integer box averaging down to the working size (never below ``work_side`` on the short side).
3. Modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence).
4. VOI LUT Sequence (interpolated, so averaged values stay exact) or the first Window Center/Width with its
   VOI LUT Function (LINEAR, LINEAR_EXACT, SIGMOID); no VOI leaves the modality values.
5. MONOCHROME1 (and MONOCHROME2 with an INVERSE Presentation LUT Shape) is negated, so that air is dark.

Averaging before the LUTs is a deliberate approximation: with a smooth LUT it changes values far less than
the later 8-bit quantization, and it makes the LUT cost independent of the detector size.

Hostile input is refused before it can cost memory (:class:`Limits`): a deflated data set is inflated
incrementally and abandoned once it would exceed ``max_inflated_bytes`` or ``max_inflate_ratio`` times its
deflated size (pydicom would inflate it all at once); :func:`pixel_description_reason` refuses inconsistent
Bits Allocated / Bits Stored / High Bit and a declared frame (Rows x Columns x Samples x Bits Allocated / 8 x
Frames) over ``max_frame_bytes`` before any decoder allocates it. A data set without File Meta Information
(a bare data set) gets the transfer syntax its encoding shows (implicit or explicit VR, byte order).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from pydicom import uid as dicom_uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Elements this large are left in the file bytes: native pixel data is then viewed in place, not copied.
DEFER_BYTES = 1 << 20
PIXEL_DATA = BaseTag(0x7FE00010)
NATIVE_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
DEFLATED = "1.2.840.10008.1.2.1.99"
# The deflated syntax named in the File Meta Information (which is never deflated) within the first bytes.
DEFLATED_MARK, META_SCAN_BYTES = DEFLATED.encode(), 4096
# Output of one incremental inflate step; a deflated data set under this size is never refused for its ratio.
INFLATE_STEP = 1 << 20
MIB = 1 << 20


class DecodeError(ValueError):
    """The pixel data cannot be turned into an image; the message is a reason fit for the report."""


class InputLimitError(DecodeError):
    """A file refused before decoding (a limit, a malformed pixel description); the message is the reason."""


@dataclass(frozen=True)
class Limits:
    """What one file may cost before it is decoded (see ``PreprocessConfig``: max_frame_mib, ...)."""

    max_frame_bytes: int = 512 * MIB
    max_inflated_bytes: int = 640 * MIB
    max_inflate_ratio: float = 100.0


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # float32, display orientation (higher = brighter), arbitrary units
    stored_shape: tuple[int, int]
    reduction: int  # overall downsampling factor from the stored image
    inverted: bool


def sniff(data: bytes) -> str:
    """'dicom', 'png' or 'unknown' from the leading bytes."""
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    return "unknown"


def read_dicom(data: bytes, force: bool = False, limits: Limits | None = None) -> Dataset:
    """Parse a DICOM file's bytes; elements over DEFER_BYTES (the pixel data) are read only when used.

    A deflated data set is inflated within ``limits`` (InputLimitError beyond them); a bare data set (no
    File Meta Information) gets the transfer syntax of its encoding in ``file_meta``.
    """
    import pydicom

    limits = limits or Limits()
    with warnings.catch_warnings():
        # pydicom warns with the offending value in the message: values may identify a patient.
        warnings.simplefilter("ignore")
        ds = None
        if DEFLATED_MARK in data[:META_SCAN_BYTES]:
            ds = _read_deflated(data, force, limits)
        if ds is None:
            ds = pydicom.dcmread(io.BytesIO(data), force=force, defer_size=DEFER_BYTES)
    _infer_transfer_syntax(ds)
    return ds


def inflate(deflated: bytes | memoryview, limits: Limits) -> bytes:
    """A raw deflate stream inflated step by step, refused once it would exceed the limits."""
    cap = min(limits.max_inflated_bytes, max(INFLATE_STEP, int(limits.max_inflate_ratio * len(deflated))))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pieces: list[bytes] = []
    total = 0
    tail: bytes | memoryview = deflated
    while True:
        piece = inflater.decompress(tail, INFLATE_STEP)
        total += len(piece)
        if total > cap:
            if cap == limits.max_inflated_bytes:
                raise InputLimitError(
                    f"deflated data set inflates beyond {limits.max_inflated_bytes / MIB:g} MiB "
                    "(max_inflated_mib)"
                )
            raise InputLimitError(
                f"deflated data set inflates to more than {limits.max_inflate_ratio:g} times its "
                "deflated size (max_inflate_ratio)"
            )
        pieces.append(piece)
        tail = inflater.unconsumed_tail
        if inflater.eof or (not tail and not piece):
            break
    if not inflater.eof:
        raise zlib.error("truncated deflate stream")  # what zlib.decompress (pydicom's reader) raises
    return b"".join(pieces)


def _read_deflated(data: bytes, force: bool, limits: Limits) -> Dataset | None:
    """pydicom's reader of Deflated Explicit VR Little Endian, with a bounded inflate (None: not deflated)."""
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    # The ignores: pydicom types these readers' stream as BinaryIO, which its own DicomBytesIO is not.
    fileobj = DicomBytesIO(data)
    preamble = read_preamble(fileobj, force)  # type: ignore[arg-type]
    file_meta = _read_file_meta_info(fileobj)  # type: ignore[arg-type]
    if str(file_meta.get("TransferSyntaxUID", "")) != DEFLATED:
        return None
    buffer = DicomBytesIO(inflate(memoryview(data)[fileobj.tell() :], limits))
    dataset = read_dataset(buffer, is_implicit_VR=False, is_little_endian=True, defer_size=DEFER_BYTES)  # type: ignore[arg-type]
    ds = FileDataset(buffer, dataset, preamble, file_meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _infer_transfer_syntax(ds: Dataset) -> None:
    """Give a bare data set the transfer syntax its encoding shows (pydicom inferred it while reading)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        from pydicom.dataset import FileMetaDataset

        ds.file_meta = meta = FileMetaDataset()
    if "TransferSyntaxUID" in meta:
        return
    pixels = ds._dict.get(PIXEL_DATA)
    if pixels is not None and getattr(pixels, "length", 0) == 0xFFFFFFFF:
        raise InputLimitError(
            "no File Meta Information, and encapsulated pixel data of unknown transfer syntax"
        )
    implicit, little = ds.original_encoding
    if implicit is None:  # nothing was read: leave it to the checks that follow
        return
    if implicit:
        meta.TransferSyntaxUID = dicom_uid.ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian if little else dicom_uid.ExplicitVRBigEndian


def pixel_description_reason(ds: Dataset, max_frame_bytes: int) -> str | None:
    """Why the Image Pixel description cannot be trusted or afforded, or None (before any decoding)."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = [ds.get(k) for k in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation")]
        if any(b is None or b == "" for b in bits):
            return "malformed pixel description (a bit depth or Pixel Representation missing)"
        allocated, stored, high, representation = (int(b) for b in bits)
    except (AttributeError, TypeError, ValueError):
        return "malformed pixel description (unreadable Rows, Columns or bit depths)"
    if allocated not in (8, 16, 32, 64):
        return f"malformed pixel description (Bits Allocated {allocated})"
    if not 1 <= stored <= allocated:
        return f"malformed pixel description (Bits Stored {stored} with Bits Allocated {allocated})"
    if high != stored - 1:
        return f"malformed pixel description (High Bit {high} is not Bits Stored - 1 = {stored - 1})"
    if representation not in (0, 1):
        return f"malformed pixel description (Pixel Representation {representation})"
    if min(rows, cols, samples, frames) < 1:
        return "malformed pixel description (no pixels)"
    size = rows * cols * samples * frames * allocated // 8
    if size > max_frame_bytes:
        return (
            f"declared pixel data too large: {rows} x {cols} x {allocated} bits x {frames} frames is "
            f"{size / MIB:.0f} MiB (max_frame_mib {max_frame_bytes / MIB:g})"
        )
    declared = _codestream_shape(ds)
    if declared is not None and declared != (rows, cols):
        return (
            f"malformed pixel description (the compressed frame declares {declared[0]} x {declared[1]}, "
            f"the header {rows} x {cols})"
        )
    return None


JPEG_SYNTAXES = frozenset(
    {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
    | {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
)
J2K_FAMILY = J2K_SYNTAXES | {"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
# Start of frame markers of JPEG (baseline to lossless; not DHT C4, JPG C8, DAC CC) and JPEG-LS (F7).
JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
CODESTREAM_HEAD = 1 << 16


def _first_fragment(ds: Dataset) -> bytes | None:
    """The first bytes of the first fragment of encapsulated Pixel Data (after the Basic Offset Table)."""
    data = ds.get("PixelData")
    if not isinstance(data, bytes) or len(data) < 16:
        return None
    tag, length = struct.unpack_from("<II", data, 0)  # the Basic Offset Table item
    at = 8 + length
    if tag != 0xE000FFFE or at + 8 > len(data):
        return None
    tag, length = struct.unpack_from("<II", data, at)  # the first fragment
    return data[at + 8 : at + 8 + min(length, CODESTREAM_HEAD)] if tag == 0xE000FFFE else None


def _codestream_shape(ds: Dataset) -> tuple[int, int] | None:
    """(rows, columns) that a JPEG 2000 or JPEG(-LS) codestream declares, or None (other syntaxes, unknown).

    Decoders size their output by the codestream, not by Rows and Columns: a small header over a codestream
    declaring 65535 x 65535 would otherwise allocate it.
    """
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if syntax not in J2K_FAMILY and syntax not in JPEG_SYNTAXES:
        return None
    head = _first_fragment(ds)
    if not head:
        return None
    if syntax in J2K_FAMILY:
        at = head.find(b"\xff\x4f\xff\x51")  # SOC then SIZ (also inside a JP2 wrapper)
        if at < 0 or len(head) < at + 24:
            return None
        xsiz, ysiz, x0, y0 = struct.unpack_from(">IIII", head, at + 8)
        return ysiz - y0, xsiz - x0
    at = 2 if head[:2] == b"\xff\xd8" else -1
    while at >= 0 and at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_SOF:
            height, width = struct.unpack_from(">HH", head, at + 5)
            return (height, width) if height else None  # 0: the height comes later (DNL)
        at += 2 + struct.unpack_from(">H", head, at + 2)[0]
    return None


def reduction_factor(shape: tuple[int, int], work_side: int) -> int:
    return max(1, min(shape) // work_side)


def box_reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks (edge rows/columns that do not fill a block are dropped)."""
    arr = np.asarray(image)
    if factor <= 1:
        return arr.astype(np.float32, copy=False)
    h, w = arr.shape[0] // factor, arr.shape[1] // factor
    # Rows first (each source row read once, contiguously), then columns of the factor-times smaller sum:
    # about 2x faster than summing factor**2 strided views, and half the memory traffic.
    acc_type = np.float32 if arr.dtype.kind == "f" else np.uint32
    rows: np.ndarray = arr[0 : h * factor : factor, : w * factor].astype(acc_type)
    for i in range(1, factor):
        rows += arr[i : h * factor : factor, : w * factor]
    out = rows[:, 0::factor].copy()
    for j in range(1, factor):
        out += rows[:, j::factor]
    return (out / np.float32(factor * factor)).astype(np.float32, copy=False)


def _number(value: object, default: float) -> float:
    if value is None or value == "":
        return default
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else default
    return float(value)  # type: ignore[arg-type]  # a DICOM number: str, int, float, DSfloat or DSdecimal


def _lut(item: Dataset, signed: bool) -> tuple[np.ndarray, float]:
    """The entries and the first input value of a LUT item (Modality or VOI)."""
    n, first, bits = (int(v) for v in item.LUTDescriptor)
    n = n or 65536
    raw = item.LUTData
    if isinstance(raw, bytes):
        dtype = np.uint8 if bits <= 8 and len(raw) == n else np.dtype("<u2")
        entries = np.frombuffer(raw, dtype=dtype)[:n]
    else:
        entries = np.asarray(raw if isinstance(raw, MultiValue | list | tuple) else [raw])[:n]
    if len(entries) < 2:
        raise DecodeError("LUT with fewer than 2 entries")
    # The first-mapped value is US or SS by the pixel representation: read as US, a negative first value
    # of a signed image shows up wrapped above 32767.
    if signed and first > 32767:
        first -= 65536
    return entries.astype(np.float32), float(first)


def modality_lut(values: np.ndarray, ds: Dataset) -> np.ndarray:
    if "ModalityLUTSequence" in ds and len(ds.ModalityLUTSequence):
        entries, first = _lut(ds.ModalityLUTSequence[0], int(ds.get("PixelRepresentation", 0)) == 1)
        return np.interp(values, first + np.arange(len(entries)), entries).astype(np.float32)
    slope = _number(ds.get("RescaleSlope"), 1.0)
    intercept = _number(ds.get("RescaleIntercept"), 0.0)
    if slope == 1.0 and intercept == 0.0:
        return values
    return (values * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def voi(values: np.ndarray, ds: Dataset) -> np.ndarray:
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        entries, first = _lut(ds.VOILUTSequence[0], int(ds.get("PixelRepresentation", 0)) == 1)
        return np.interp(values, first + np.arange(len(entries)), entries).astype(np.float32)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center = _number(ds.WindowCenter, 0.0)
        width = _number(ds.WindowWidth, 0.0)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if function == "SIGMOID" and width > 0:
            return (1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))).astype(np.float32)
        if function == "LINEAR_EXACT" and width > 0:
            return np.clip((values - center) / width + 0.5, 0.0, 1.0).astype(np.float32)
        if width >= 1:
            # PS3.3 C.11.2.1.2.1: the -0.5 and (w - 1) terms are the standard's, not an off-by-one.
            scaled = (values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5
            return np.clip(scaled, 0.0, 1.0).astype(np.float32)
    return values


def _j2k_levels(codestream: bytes) -> int:
    """Decomposition levels from the COD marker of a JPEG 2000 codestream (0 if not found)."""
    at = codestream.find(b"\xff\x52", 0, 4096)
    if at < 0 or len(codestream) < at + 10:
        return 0
    return codestream[at + 9]  # marker(2) Lcod(2) Scod(1) progression(1) layers(2) MCT(1) -> levels


def _j2k_reduced(ds: Dataset, factor: int) -> tuple[np.ndarray, int] | None:
    """Decode a single-frame unsigned JPEG 2000 image at 1/2**r resolution with Pillow, or None."""
    from PIL import Image
    from PIL.Jpeg2KImagePlugin import Jpeg2KImageFile
    from pydicom.encaps import generate_frames

    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    levels = _j2k_levels(frame)
    r = min(int(np.log2(factor)), levels)
    # Pillow refuses some files at deeper levels than the codestream would allow (RG1 at 2 of its 5):
    # step back one level at a time, and to the generic decoder if none works.
    while r >= 1:
        try:
            with Image.open(io.BytesIO(frame)) as im:
                if not isinstance(im, Jpeg2KImageFile):
                    return None  # only Pillow's JPEG 2000 reader decodes at a reduced resolution
                im.reduce = r
                im.load()
                mode = im.mode
                arr = np.asarray(im)
        except (OSError, ValueError):
            r -= 1
            continue
        if mode == "L":
            return arr, 1 << r
        if mode == "I;16":
            # Pillow scales samples to 16 bits; the codestream precision is Bits Stored.
            precision = int(ds.get("BitsStored", 16))
            return (arr >> (16 - precision)).astype(np.uint16), 1 << r
        return None
    return None


def _native_pixel_bytes(ds: Dataset, raw: bytes | None, syntax: str) -> bytes | memoryview:
    """The Pixel Data value: a view into the file's bytes when it was deferred, else the parsed value."""
    elem = ds._dict.get(PIXEL_DATA)
    # Deferred: a raw element (only those know where their value lies) whose value was not read. Offsets are
    # into the stream pydicom read: the file itself, except for deflated syntaxes.
    if (
        raw is not None
        and isinstance(elem, RawDataElement)
        and elem.value is None
        and elem.value_tell is not None
        and syntax in NATIVE_SYNTAXES
        and elem.length != 0xFFFFFFFF
    ):
        return memoryview(raw)[elem.value_tell : elem.value_tell + elem.length]
    return ds.PixelData


def stored_values(ds: Dataset, factor: int, raw: bytes | None = None) -> tuple[np.ndarray, int]:
    """The stored pixel values and the downsampling factor already applied (1 or a power of 2).

    ``raw``: the file's bytes, from which native pixel data is viewed without a copy when it was deferred.
    """
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits_allocated = int(ds.get("BitsAllocated", 16))
    unsigned = int(ds.get("PixelRepresentation", 0)) == 0
    if syntax in J2K_SYNTAXES and factor >= 2 and unsigned:
        reduced = _j2k_reduced(ds, factor)
        if reduced is not None:
            return reduced
    is_native_le = syntax in NATIVE_SYNTAXES or syntax == "1.2.840.10008.1.2.1.99"
    if is_native_le and unsigned and bits_allocated in (8, 16) and "PixelData" in ds:
        dtype = np.dtype(np.uint8) if bits_allocated == 8 else np.dtype("<u2")
        n = rows * cols
        data = _native_pixel_bytes(ds, raw, syntax)
        if len(data) < n * dtype.itemsize:
            raise DecodeError("pixel data shorter than Rows x Columns (truncated file?)")
        arr = np.frombuffer(data, dtype=dtype, count=n).reshape(rows, cols)
        bits_stored = int(ds.get("BitsStored", bits_allocated))
        high_bit = int(ds.get("HighBit", bits_stored - 1))
        if high_bit != bits_stored - 1:
            return _generic(ds), 1
        # Unused high bits may hold overlays or garbage; most files leave them clear, and a max is cheaper
        # than a masked copy of the whole image.
        if bits_stored < bits_allocated and int(arr.max()) >> bits_stored:
            arr = arr & np.array((1 << bits_stored) - 1, dtype=arr.dtype)
        return arr, 1
    return _generic(ds), 1


def _generic(ds: Dataset) -> np.ndarray:
    from pydicom.pixels import pixel_array

    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if syntax in J2K_SYNTAXES:
                # OpenJPEG through pylibjpeg decodes JPEG 2000 ~10-30% faster than GDCM, pydicom's default.
                try:
                    arr = pixel_array(ds, decoding_plugin="pylibjpeg")
                except (RuntimeError, ValueError, ImportError):
                    arr = ds.pixel_array
            else:
                arr = ds.pixel_array
    except Exception as exc:  # codec errors come as many types; the reason must not echo header values
        raise DecodeError(f"pixel data cannot be decoded ({type(exc).__name__})") from exc
    if arr.ndim != 2:
        raise DecodeError(f"decoded pixel array has shape {arr.shape}, expected one grayscale frame")
    return arr


def grayscale_table(ds: Dataset, lo: int, hi: int) -> np.ndarray:
    """Modality LUT, VOI and polarity composed into one table over the stored values lo..hi."""
    values = np.arange(lo, hi + 1, dtype=np.float32)
    table = voi(modality_lut(values, ds), ds)
    if inverted(ds):
        table = -table
    return table.astype(np.float32, copy=False)


def inverted(ds: Dataset) -> bool:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    return photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"


def decode_dicom(ds: Dataset, work_side: int, raw: bytes | None = None) -> Decoded:
    """The display-oriented image of a single-frame grayscale dataset, box-averaged to ~``work_side``.

    ``raw``: the bytes ``ds`` was read from (lets native pixel data be used in place).
    """
    rows, cols = int(ds.Rows), int(ds.Columns)
    factor = reduction_factor((rows, cols), work_side)
    stored, done = stored_values(ds, factor, raw)
    remaining = reduction_factor(stored.shape, work_side)
    if remaining > 1:
        # Averages are rounded back to stored integers: half a stored unit is far below what survives the
        # 8-bit output, and integers let one composed table replace three per-pixel LUT passes.
        stored = np.rint(box_reduce(stored, remaining)).astype(
            np.int64 if stored.dtype.kind == "i" else np.uint32
        )
    if stored.dtype.kind in "iu":
        lo, hi = int(stored.min()), int(stored.max())
        table = grayscale_table(ds, lo, hi)
        index = stored - np.array(lo, dtype=stored.dtype) if lo else stored
        values = table[index]
    else:  # float pixel data (rare in CR/DX): the LUTs apply per pixel
        values = voi(modality_lut(stored.astype(np.float32), ds), ds)
        values = -values if inverted(ds) else values
    return Decoded(values.astype(np.float32, copy=False), (rows, cols), done * remaining, inverted(ds))


# Bytes per pixel Pillow decodes each PNG mode into (others: 4, the widest).
_PNG_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "I;16": 2, "RGB": 3, "RGBA": 4}


def decode_png(data: bytes, work_side: int, max_frame_bytes: int = Limits.max_frame_bytes) -> Decoded:
    """A grayscale PNG (ChestX-ray14 layout: 8-bit, some stored as RGB(A) with equal channels); one whose
    declared size would decode to more than ``max_frame_bytes`` is refused before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            frame = width * height * _PNG_MODE_BYTES.get(im.mode, 4)
            if frame > max_frame_bytes:  # a few KB of zlib can declare gigabytes
                raise InputLimitError(
                    f"declared pixel data too large: {width} x {height} PNG ({im.mode}) is "
                    f"{frame / MIB:.0f} MiB, over max_frame_mib {max_frame_bytes / MIB:g}"
                )
            im.load()
            arr = np.asarray(im)
            mode = im.mode
    except InputLimitError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DecodeError(f"PNG cannot be decoded ({type(exc).__name__})") from exc
    if arr.ndim == 3:
        # Channel by channel: a widened copy of a large RGB image would cost four times its size.
        if any((arr[..., c] != arr[..., 0]).any() for c in range(1, min(arr.shape[-1], 3))):
            raise DecodeError(f"colour image (PNG mode {mode}), not a grayscale radiograph")
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DecodeError(f"PNG has shape {arr.shape}, expected a 2-D grayscale image")
    factor = reduction_factor(arr.shape, work_side)
    return Decoded(box_reduce(arr, factor), (int(arr.shape[0]), int(arr.shape[1])), factor, False)
