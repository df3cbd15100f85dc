"""Benchmark the ingest stage against the decode-only floor and the common research path, side by side.

For each source (the synthetic default cohort, and the real CR chest radiograph RG1 of pydicom-data as
uncompressed and JPEG 2000 files), three per-file paths run over the same files, in the same pool of worker
processes, interleaved and repeated (median reported):

- floor:  ``pydicom.dcmread(path).pixel_array`` (decode only, pydicom's default plugins);
- common: the same, then ``skimage.transform.resize(..., anti_aliasing=True)`` to the output size;
- ingest: the stage's per-file work (``cxrpriv.ingest.process.process_file``): read, keyed checksum, scope
  rules, decode (with reduced-resolution JPEG 2000), grayscale LUTs, standardization, text detection,
  resize, Annex E de-identification and the DICOM JSON header.

Then the whole stage (parallel workers, shards, splits, Great Expectations) runs in a fresh process on part
of the cohort and on all of it, for end-to-end throughput and peak resident memory. Prints Markdown.

    python benchmarks/bench_ingest.py --cohort data/synthetic --workers 2 --rg1-copies 12
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

IMAGE_SIZE = 128
PARAMS = Path("params.yaml")
_STATE: dict[str, object] = {}


def _floor(path: str) -> int:
    import pydicom

    try:
        return int(pydicom.dcmread(Path(str(_STATE["root"])) / path).pixel_array.size > 0)
    except Exception:  # off-scope and broken files fail here as they do in any loader
        return 0


def _common(path: str) -> int:
    import pydicom
    from skimage.transform import resize

    try:
        pixels = pydicom.dcmread(Path(str(_STATE["root"])) / path).pixel_array.astype(np.float32)
    except Exception:
        return 0
    if pixels.ndim != 2:
        return 0
    resize(pixels, (IMAGE_SIZE, IMAGE_SIZE), anti_aliasing=True)
    return 1


def _ingest(path: str) -> int:
    from cxrpriv.ingest.process import INGESTED, process_file
    from cxrpriv.ingest.sources import SourceFile

    ctx, deid = _STATE["ctx"], _STATE["deid"]
    result = process_file(ctx, SourceFile(path, 0, ""), deid)  # type: ignore[arg-type]
    return int(result.outcome == INGESTED)


def _init(root: str) -> None:
    from cxrpriv.config import load_stage_config
    from cxrpriv.ingest.allocator import keep_freed_memory
    from cxrpriv.ingest.config import PreprocessConfig
    from cxrpriv.ingest.deid import Deidentifier
    from cxrpriv.ingest.keys import DeidKey
    from cxrpriv.ingest.process import WorkerContext
    from cxrpriv.ingest.sources import FolderSource

    warnings.simplefilter("ignore")
    keep_freed_memory()  # as the stage's workers do; applies to all three paths alike
    _STATE["root"] = root
    config = load_stage_config(PreprocessConfig, "preprocess", PARAMS, "default", {"image_size": IMAGE_SIZE})
    key = DeidKey(b"cxrpriv-benchmark-key-not-secret-0123456789", "test")
    _STATE["ctx"] = WorkerContext(FolderSource(Path(root)), config, key)
    _STATE["deid"] = Deidentifier(key, config.deid_options, config.max_date_shift_days)


def timed_map(fn: Callable[[str], int], paths: list[str], root: str, workers: int) -> tuple[float, int]:
    mp = multiprocessing.get_context("fork")
    with mp.Pool(workers, initializer=_init, initargs=(root,)) as pool:
        # Warm each worker with the path being timed: its own lazy imports (codecs, Pillow, SciPy) and caches
        # cost a one-off ~0.1-0.3 s that would otherwise be charged to the first files, which with a dozen
        # large files (RG1) dominated the measured rate.
        pool.map(fn, paths[: workers * 2], chunksize=1)
        start = time.perf_counter()
        # One file per task: with a dozen large files, bigger chunks would leave a worker idle at the end.
        done = sum(pool.imap(fn, paths, chunksize=1))
        return time.perf_counter() - start, done


def bench_source(name: str, root: Path, paths: list[str], workers: int, repeats: int) -> dict[str, object]:
    """Files per second of the three paths over ``paths`` (relative to ``root``), and their ratios."""
    for path in paths:  # page cache: every path reads from memory, not disk
        (root / path).read_bytes()
    walls: dict[str, list[float]] = {"floor": [], "common": [], "ingest": []}
    ingested = 0
    for _ in range(repeats):
        for method, fn in (("floor", _floor), ("common", _common), ("ingest", _ingest)):
            wall, ok = timed_map(fn, paths, str(root), workers)
            walls[method].append(wall)
            if method == "ingest":
                ingested = ok
    rate = {m: len(paths) / statistics.median(w) for m, w in walls.items()}
    return {
        "source": name,
        "files": len(paths),
        "ingested": ingested,
        **{f"{m}_per_s": r for m, r in rate.items()},
        "vs_floor": rate["ingest"] / rate["floor"],
        "vs_common": rate["ingest"] / rate["common"],
    }


def stage_run(cohort: Path, n_files: int | None, workers: int, workdir: Path) -> dict[str, float]:
    """The whole stage in a fresh process over the first ``n_files`` DICOM files; wall, rate, peak RSS."""
    source = workdir / f"source-{n_files or 'all'}"
    shutil.rmtree(source, ignore_errors=True)
    files = sorted(p for p in (cohort / "dataset" / "dicom").rglob("*") if p.is_file())[:n_files]
    for path in files:
        link = source / path.relative_to(cohort / "dataset" / "dicom")
        link.parent.mkdir(parents=True, exist_ok=True)
        # a hard link (a copy across file systems), not a symlink: ingest rejects links out of the source
        try:
            os.link(path.resolve(), link)
        except OSError:
            shutil.copy2(path, link)
    out = workdir / f"out-{n_files or 'all'}"
    shutil.rmtree(out, ignore_errors=True)
    script = (
        "import sys, time, json, warnings; warnings.simplefilter('ignore')\n"
        "from pathlib import Path\n"
        "from cxrpriv.config import load_stage_config\n"
        "from cxrpriv.ingest.config import PreprocessConfig\n"
        "from cxrpriv.ingest.keys import DeidKey\n"
        "from cxrpriv.ingest.labels import LabelsTable\n"
        "from cxrpriv.ingest.sources import FolderSource\n"
        "from cxrpriv.ingest.stage import preprocess\n"
        "source, labels, out, workers, size, params = sys.argv[1:7]\n"
        "config = load_stage_config(PreprocessConfig, 'preprocess', Path(params), 'default',\n"
        "                           {'workers': int(workers), 'image_size': int(size)})\n"
        "table = LabelsTable.from_csv(Path(labels).read_bytes(), 'labels')\n"
        "start = time.perf_counter()\n"
        "r = preprocess(config, FolderSource(Path(source)), table, Path(out), DeidKey(b'b' * 32, 'test'))\n"
        "print(json.dumps({'wall': time.perf_counter() - start, 'files': r.metrics['files_processed']}))\n"
    )
    probe = (
        "import json, resource, subprocess, sys;"
        " d = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True);"
        " r = json.loads(d.stdout.strip().splitlines()[-1]);"
        " r['peak_mib'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024; print(json.dumps(r))"
    )
    labels = cohort / "dataset" / "Data_Entry_2017.csv"
    cmd = [
        sys.executable,
        "-c",
        script,
        str(source),
        str(labels),
        str(out),
        str(workers),
        str(IMAGE_SIZE),
        str(PARAMS),
    ]
    done = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["per_s"] = result["files"] / result["wall"]
    return result


def main(argv: list[str] | None = None) -> int:
    global IMAGE_SIZE, PARAMS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohort", type=Path, default=Path("data/synthetic"), help="A synthesize output.")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rg1-copies", type=int, default=24, help="Times each RG1 file is processed.")
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved repeats (median reported).")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--stage-sizes", type=int, nargs="*", default=[500, 0], help="0: all files.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--params", type=Path, default=PARAMS, help="Params file with the preprocess section."
    )
    args = parser.parse_args(argv)
    IMAGE_SIZE, PARAMS = args.image_size, args.params.resolve()
    from pydicom.data import get_testdata_file

    rows = []
    dicom = args.cohort / "dataset" / "dicom"
    cohort_paths = sorted(p.relative_to(dicom).as_posix() for p in dicom.rglob("*") if p.is_file())
    rows.append(
        bench_source(
            "synthetic default cohort (320 px, mixed syntaxes)",
            dicom,
            cohort_paths,
            args.workers,
            args.repeats,
        )
    )
    for name, label in (
        ("RG1_UNCI.dcm", "RG1 CR chest 1955x1841, uncompressed"),
        ("RG1_J2KR.dcm", "RG1, JPEG 2000 lossless"),
        ("RG1_J2KI.dcm", "RG1, JPEG 2000 lossy"),
    ):
        path = Path(get_testdata_file(name))
        rows.append(
            bench_source(label, path.parent, [path.name] * args.rg1_copies, args.workers, args.repeats)
        )

    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.workers} worker processes for every path; output {IMAGE_SIZE} px; median of {args.repeats}.\n"
    )
    columns = (
        "source",
        "files",
        "ingested",
        "floor (img/s)",
        "common (img/s)",
        "ingest (img/s)",
        "ingest / floor",
    )
    print("| " + " | ".join((*columns, "ingest / common")) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['source']} | {r['files']} | {r['ingested']} | {r['floor_per_s']:.1f} | "
            f"{r['common_per_s']:.1f} | {r['ingest_per_s']:.1f} | {r['vs_floor']:.2f}x | "
            f"{r['vs_common']:.2f}x |"
        )
    if args.stage_sizes:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        print("\n| whole stage on the cohort | files | wall (s) | files/s | peak RSS of one process (MiB) |")
        print("|---|---|---|---|---|")
        for n in args.stage_sizes:
            r = stage_run(args.cohort, n or None, args.workers, workdir)
            which = f"first {n}" if n else "all"
            print(
                f"| {which} files | {r['files']} | {r['wall']:.1f} | {r['per_s']:.1f} | {r['peak_mib']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
