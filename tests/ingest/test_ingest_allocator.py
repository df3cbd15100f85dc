"""Workers keep freed memory for the next file: no fresh pages (page faults) per file once warm."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from cxrpriv.ingest.allocator import keep_freed_memory
from cxrpriv.ingest.deid import Deidentifier
from cxrpriv.ingest.process import INGESTED, WorkerContext, process_file
from cxrpriv.ingest.sources import FolderSource, SourceFile
from tests.ingest.conftest import TEST_KEY, tiny_preprocess_config


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_a_large_file_reuses_the_previous_files_pages():
    """RG1 uncompressed (7 MB): without the tuning, ~3,500 page faults per file were measured."""
    if not keep_freed_memory():
        pytest.skip("not glibc malloc")
    path = Path(get_testdata_file("RG1_UNCI.dcm"))
    config = tiny_preprocess_config(image_size=128)
    ctx = WorkerContext(FolderSource(path.parent), config, TEST_KEY)
    deid = Deidentifier(TEST_KEY, config.deid_options, config.max_date_shift_days)
    item = SourceFile(path.name, path.stat().st_size, "")
    for _ in range(3):
        assert process_file(ctx, item, deid).outcome == INGESTED
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        process_file(ctx, item, deid)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5 < 300
