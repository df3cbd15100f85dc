"""`cxrpriv anonymize` writes a dataset in exactly the ingest format, readable by the stages after ingest."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrpriv.anonymize.generator import anonymizer_spec, build_anonymizer
from cxrpriv.anonymize_dataset.config import AnonymizeConfig
from cxrpriv.anonymize_dataset.methods import build_method
from cxrpriv.anonymize_dataset.stage import anonymize_dataset
from cxrpriv.cli import main
from cxrpriv.config import load_stage_config
from cxrpriv.dataset import anonymization, open_dataset
from cxrpriv.ingest.shards import shard_header_lines
from cxrpriv.training.checkpoint import save_state_dict
from tests.conftest import PARAMS, IngestedCohort

CPU = torch.device("cpu")


def _config(**overrides: object) -> AnonymizeConfig:
    base = load_stage_config(AnonymizeConfig, "anonymize", PARAMS, "default")
    return dataclasses.replace(base, **overrides)


def _run(config: AnonymizeConfig, ingest: Path, out: Path, anonymizer: Path | None = None) -> Path:
    anonymize_dataset(config, build_method(config, anonymizer, CPU), ingest, out, device=CPU, progress=False)
    return out


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained, clearly non-identity) generator saved as train_anonymizer saves one, at 16 px."""
    out = tmp_path_factory.mktemp("generator")
    kwargs = {"widths": (4, 8), "noise_channels": 0, "mu": 0.1, "sigma": 1.0, "kernel": 5}
    torch.manual_seed(0)
    model = build_anonymizer(**kwargs, init_scale=5.0)
    save_state_dict(model, out / "model.pt")
    (out / "spec.json").write_text(json.dumps(anonymizer_spec(kwargs, 16)))
    return out


def test_the_output_is_the_ingest_format_with_anonymized_pixels(
    tiny_ingested_cohort: IngestedCohort, generator_dir: Path, tmp_path: Path
):
    source = open_dataset(tiny_ingested_cohort.ingest)
    out = _run(_config(method="learned"), source.root, tmp_path / "anonymized", generator_dir)
    result = open_dataset(out)
    # same rows, columns, ids, splits, shards and offsets; headers and reports as ingest wrote them
    unchanged = [c for c in source.manifest.columns if c not in ("pixel_mean", "pixel_std")]
    assert list(result.manifest.columns) == list(source.manifest.columns)
    assert result.manifest[unchanged].equals(source.manifest[unchanged])
    for number in sorted(set(source.manifest["shard"])):
        assert shard_header_lines(out, number) == shard_header_lines(source.root, number)
    assert (out / "report" / "files.parquet").read_bytes() == (
        source.root / "report" / "files.parquet"
    ).read_bytes()
    applied = anonymization(out)
    assert applied is not None and applied["method"] == "learned" and applied["settings"]["mu"] == 0.1
    assert anonymization(source.root) is None
    # the pixels moved, in the stored type and size, and the manifest's pixel statistics follow them
    before, after = source.images(), result.images()
    assert after[0].dtype == before[0].dtype and after[0].shape == before[0].shape
    assert (
        np.mean([np.abs(after.as_float(i) - before.as_float(i)).mean() for i in range(len(source.manifest))])
        > 0.005
    )
    assert result.manifest["pixel_mean"].iloc[0] == pytest.approx(after.as_float(0).mean(), abs=1e-4)


def test_the_verifier_loader_reads_the_anonymized_dataset(
    tiny_ingested_cohort: IngestedCohort, tmp_path: Path
):
    from cxrpriv.reid.data import load_reid_data
    from cxrpriv.training.accelerator import select_accelerator
    from tests.reid.conftest import tiny_reid_config

    out = _run(_config(method="random_warp"), tiny_ingested_cohort.ingest, tmp_path / "warped")
    data = load_reid_data(tiny_reid_config(), out, select_accelerator("cpu"), progress=False)
    source = open_dataset(tiny_ingested_cohort.ingest)
    assert data.summary()["train_images"] == len(source.split_rows()["train"])
    assert not torch.equal(data.bank.batch([0]), _bank_of(source.root)[0:1])


def _bank_of(root: Path) -> torch.Tensor:
    from cxrpriv.reid.data import load_reid_data
    from cxrpriv.training.accelerator import select_accelerator
    from tests.reid.conftest import tiny_reid_config

    data = load_reid_data(tiny_reid_config(), root, select_accelerator("cpu"), progress=False)
    return data.bank.batch([0])


def test_results_do_not_depend_on_the_batch_and_none_copies_the_pixels(
    tiny_ingested_cohort: IngestedCohort, tmp_path: Path
):
    ingest = tiny_ingested_cohort.ingest
    one = _run(_config(method="dp_pix", batch_size=1), ingest, tmp_path / "one")
    many = _run(_config(method="dp_pix", batch_size=7), ingest, tmp_path / "many")
    other = _run(_config(method="dp_pix", seed=5), ingest, tmp_path / "other")
    same = open_dataset(one).images(), open_dataset(many).images(), open_dataset(other).images()
    assert all(np.array_equal(same[0][i], same[1][i]) for i in range(len(same[0])))
    assert not all(np.array_equal(same[0][i], same[2][i]) for i in range(len(same[0])))
    copied = open_dataset(_run(_config(method="none"), ingest, tmp_path / "none")).images()
    original = open_dataset(ingest).images()
    assert all(np.array_equal(copied[i], original[i]) for i in range(len(original)))


def test_the_cli_anonymizes_and_names_a_missing_generator(
    tiny_ingested_cohort: IngestedCohort, tmp_path: Path, isolated_mlflow: str
):
    base = [
        "anonymize",
        "--params",
        str(PARAMS),
        "--ingest",
        str(tiny_ingested_cohort.ingest),
        "--no-progress",
    ]
    paths = [
        "--out",
        str(tmp_path / "out"),
        "--metrics",
        str(tmp_path / "m.json"),
        "--plots",
        str(tmp_path / "p"),
    ]
    assert main([*base, *paths, "--method", "learned", "--anonymizer", str(tmp_path / "missing")]) == 2
    assert main([*base, *paths, "--method", "random_warp"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["method"] == "random_warp" and metrics["images"] == metrics["manifest_rows"]
    assert 0 < metrics["largest_displacement_px"] <= 0.1 * 32 / 2 + 1e-6
    assert (tmp_path / "p" / "examples.png").is_file()
