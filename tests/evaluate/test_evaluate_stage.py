"""The evaluate stage on the easy cohort: every attacker on the same aligned test pairs, utility, the cache
that lets a killed run resume, and ``cxrpriv evaluate`` end to end (decision, report, MLflow tags)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from cxrpriv.anonymize_dataset.config import AnonymizeConfig
from cxrpriv.anonymize_dataset.methods import build_method
from cxrpriv.anonymize_dataset.stage import anonymize_dataset
from cxrpriv.cli import main
from cxrpriv.config import config_to_dict, load_stage_config
from cxrpriv.evaluate import EvaluateInputError
from cxrpriv.evaluate.attackers import RetrainedFamily, summarize_runs
from cxrpriv.evaluate.config import EvaluateConfig
from cxrpriv.evaluate.results import validate_results, worst_attacker
from cxrpriv.evaluate.stage import EvaluateInputs, evaluate
from cxrpriv.reid.attack import AttackSettings
from tests.classify.conftest import tiny_classifier_config
from tests.conftest import PARAMS
from tests.reid.conftest import tiny_reid_config
from tests.trained_models import Trained, easy_verifier_config

CPU = torch.device("cpu")
# Destroys the 32-px films (4 x 4 cells, heavy noise): no attacker or classifier can read them.
DESTROYED = {"method": "dp_pix", "dp_pix_cell": 8, "dp_pix_epsilon": 0.02}
MILD = {"method": "random_warp", "random_warp_mu": 0.02}


def _anonymized(trained: Trained, out: Path, **settings: object) -> Path:
    config = dataclasses.replace(
        load_stage_config(AnonymizeConfig, "anonymize", PARAMS, "default"), **settings
    )
    if not (out / "manifest.parquet").is_file():
        anonymize_dataset(
            config, build_method(config, None, CPU), trained.ingest, out, device=CPU, progress=False
        )
    return out


def _attackers() -> tuple[RetrainedFamily, ...]:
    metric = easy_verifier_config(max_epochs=8)  # the easy cohort's verifier, shorter
    siamese = tiny_reid_config(method="siamese", max_epochs=1)
    return (RetrainedFamily("default", metric, (1, 2)), RetrainedFamily("siamese", siamese, (1,)))


def _inputs(trained: Trained, anonymized: tuple[Path, ...]) -> EvaluateInputs:
    families = _attackers()
    return EvaluateInputs(
        original=trained.ingest,
        anonymized=anonymized,
        verifier=trained.verifier,
        classifier=trained.classifier,
        attackers=families,
        settings=AttackSettings.of(families[0].config),
        classifier_config=tiny_classifier_config(findings=("Mass",), min_eval_positives=1),
        priors=trained.priors,
    )


@pytest.fixture(scope="module")
def variants(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("variants")
    return _anonymized(trained, root / "destroyed", **DESTROYED), _anonymized(trained, root / "mild", **MILD)


@pytest.fixture(scope="module")
def evaluated(trained: Trained, variants: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("evaluate-work")
    config = dataclasses.replace(
        load_stage_config(EvaluateConfig, "evaluate", PARAMS, "default"), retrain_classifier=False, examples=2
    )
    return evaluate(config, _inputs(trained, variants), work, device="cpu", progress=False), work, config


def test_every_attacker_is_measured_on_the_same_aligned_pairs(evaluated, trained: Trained):
    result, _, _ = evaluated
    results = result.results
    validate_results(results)
    reference, destroyed, mild = results["variants"]
    assert [v["name"] for v in results["variants"]] == ["none", "dp_pix (b=8)", "random_warp (mu=0.02)"]
    assert results["chosen"] == "dp_pix (b=8)" and results["reference"] == "none"
    # the reference is the verifier stage's own model on the original test films
    assert reference["privacy"]["frozen_verifier"]["auc"] == pytest.approx(
        trained.verifier_test_auc, abs=1e-9
    )
    pairs = {v["privacy"]["frozen_verifier"]["pairs"] for v in results["variants"]}
    assert pairs == {results["test"]["pairs"]}
    # destroyed films are not linked; a 0.6-px warp leaves identity where it was
    assert reference["privacy"]["frozen_verifier"]["auc"] > 0.9
    assert destroyed["privacy"]["frozen_verifier"]["auc"] < 0.75
    assert mild["privacy"]["frozen_verifier"]["auc"] > destroyed["privacy"]["frozen_verifier"]["auc"] + 0.15
    assert (
        destroyed["utility"]["frozen_classifier"]["mean_auc"]
        < reference["utility"]["frozen_classifier"]["mean_auc"] - 0.1
    )
    assert reference["utility"]["frozen_classifier"]["labels"] == "text-mined"  # no answer key given


def test_retrained_attackers_report_every_seed_and_the_worst(evaluated):
    result, _, _ = evaluated
    for variant in result.results["variants"][1:]:
        metric = variant["privacy"]["retrained"]["default"]
        assert metric["seeds"] == [1, 2] and [r["seed"] for r in metric["runs"]] == [1, 2]
        aucs = [r["auc"] for r in metric["runs"]]
        assert metric["auc_worst"] == max(aucs) and metric["auc_mean"] == pytest.approx(sum(aucs) / 2)
        assert metric["train_images"] == 48 and metric["train_pairs"] == 48 * 47 // 2
        assert variant["privacy"]["retrained"]["siamese"]["seeds"] == [1]
        assert worst_attacker(variant) is not None
    mild = result.results["variants"][2]["privacy"]["retrained"]["default"]
    assert mild["auc_mean"] > 0.8  # an attacker retrained on mildly warped films still links them
    assert set(result.examples) == {"original", "dp_pix (b=8)", "random_warp (mu=0.02)"}


def test_a_rerun_reuses_each_seed_s_record(
    evaluated, trained: Trained, variants, monkeypatch: pytest.MonkeyPatch
):
    result, work, config = evaluated

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained although every seed's record is cached")

    monkeypatch.setattr("cxrpriv.evaluate.attackers._train_one", no_training)
    again = evaluate(config, _inputs(trained, variants), work, device="cpu", progress=False)
    assert again.results == result.results


def test_summary_of_hand_made_runs():
    runs = [
        {
            "seed": s,
            "auc": a,
            "p_at_1": p,
            "map_at_r": 0.1,
            "train_images": 10,
            "train_patients": 5,
            "train_pairs": 45,
        }
        for s, a, p in ((1, 0.6, 0.1), (2, 0.8, 0.3), (3, 0.7, 0.2))
    ]
    summary = summarize_runs(runs)
    assert summary["auc_mean"] == pytest.approx(0.7) and summary["auc_sd"] == pytest.approx(0.1)
    assert summary["auc_worst"] == 0.8 and summary["worst_seed"] == 2 and summary["p_at_1_worst"] == 0.3


def test_a_dataset_that_is_not_anonymized_is_refused(trained: Trained, tmp_path: Path):
    config = load_stage_config(EvaluateConfig, "evaluate", PARAMS, "default")
    with pytest.raises(EvaluateInputError, match="not an anonymized dataset"):
        evaluate(config, _inputs(trained, (trained.ingest,)), tmp_path, device="cpu", progress=False)


def _tiny_params(tmp_path: Path) -> Path:
    params = yaml.safe_load(PARAMS.read_text())

    def plain(config: object) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config_to_dict(config).items()}

    params["train_reid"] = plain(tiny_reid_config(method="metric", max_epochs=1))
    params["profiles"]["siamese"]["train_reid"] = {"method": "siamese"}
    params["train_classifier"] = plain(tiny_classifier_config(findings=("Mass",), max_epochs=1))
    params["evaluate"].update(attacker_seeds=[1], other_attacker_seeds=[1], retrain_classifier=True)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_cli_decides_writes_the_report_and_tags_the_runs(
    trained: Trained, variants, tmp_path: Path, isolated_mlflow: str
):
    out = tmp_path / "evaluate"
    argv = ["evaluate", "--params", str(_tiny_params(tmp_path)), "--ingest", str(trained.ingest)]
    argv += ["--anonymized", str(variants[1]), "--verifier", str(trained.verifier)]
    argv += ["--classifier", str(trained.classifier), "--priors", str(trained.priors), "--device", "cpu"]
    argv += [
        "--out",
        str(out),
        "--metrics",
        str(tmp_path / "m.json"),
        "--plots",
        str(tmp_path / "plots"),
        "--no-progress",
    ]
    assert main(argv) == 0
    decision = json.loads((out / "release_decision.json").read_text())
    assert (
        decision["decision"] == "fail"
        and decision["variant"] == "random_warp (mu=0.02)"
        and decision["reasons"]
    )
    assert "FAIL" in (out / "report.html").read_text()
    results = json.loads((tmp_path / "m.json").read_text())
    assert "retrained_classifier" in results["variants"][1]["utility"]
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"privacy_utility.png", "examples.png"}
    assert not out.with_name("evaluate.checkpoint").exists()  # the work dir goes once the outputs exist
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    (run,) = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    assert run.data.tags["cxrpriv.release_decision"] == "fail"
    missing = [
        *argv[: argv.index("--anonymized")],
        "--anonymized",
        str(tmp_path / "nothing"),
        *argv[argv.index("--verifier") :],
    ]
    assert main(missing) == 2


def test_the_original_test_films_are_banked_once_per_size(
    trained: Trained, variants: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    from cxrpriv.dataset import open_dataset
    from cxrpriv.evaluate import films
    from cxrpriv.evaluate.films import OriginalFilms, aligned_test_sets

    banked: list[tuple[Path, int | None]] = []
    real = films.test_films

    def counted(dataset, size, device, progress=False):
        banked.append((dataset.root, size))
        return real(dataset, size, device, progress)

    monkeypatch.setattr(films, "test_films", counted)
    original, anonymized = open_dataset(trained.ingest), open_dataset(variants[1])
    originals = OriginalFilms(original, CPU)
    first = aligned_test_sets(anonymized, originals, 32)
    again = aligned_test_sets(anonymized, originals, 32)
    reference = aligned_test_sets(original, originals, 32)
    smaller = aligned_test_sets(anonymized, originals, 16)
    assert first[1] is again[1] is reference[0] is reference[1]  # one bank of the originals at 32 px
    assert smaller[1].bank.size == 16 and first[0].bank.size == 32
    assert [s for root, s in banked if root == original.root] == [32, 16]
    assert [s for root, s in banked if root == anonymized.root] == [32, 32, 16]  # queries: once per attack
