"""`cxrpriv priors` end to end on a tiny synthetic cohort (files, MLflow run, errors), and the stage on a few
hundred synthetic images against the cohort's answer key."""

from __future__ import annotations

import json
import logging
import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from cxrpriv.cli import main
from cxrpriv.config import load_stage_config
from cxrpriv.priors.config import PriorsConfig
from cxrpriv.priors.output import PRIORS_FILE, PRIORS_SKIPPED_FILE
from cxrpriv.priors.stage import compute_priors
from cxrpriv.priors.tables import read_mined_labels, read_reread_table
from cxrpriv.priors.vocabulary import DEFAULT_VOCABULARY
from cxrpriv.synth.cohort import synthesize
from tests.conftest import PARAMS, tiny_synth_config


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    """A few dozen images, half of them re-read: enough for every output to exist, too few for numbers."""
    out = tmp_path_factory.mktemp("priors_tiny") / "synthetic"
    synthesize(tiny_synth_config(n_patients=30, reread_fraction=0.5), out, progress=False)
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """About 420 images, every one re-read by the four simulated radiologists (seconds at 64 px)."""
    out = tmp_path_factory.mktemp("priors") / "synthetic"
    synthesize(tiny_synth_config(n_patients=250, reread_fraction=1.0, workers=2), out, progress=False)
    return out


@pytest.fixture(scope="module")
def cohort_priors(cohort):
    """The stage's document on that cohort, computed by the library (no MLflow needed)."""
    config = load_stage_config(PriorsConfig, "priors", PARAMS, "default")
    dataset = cohort / "dataset"
    mined = read_mined_labels(dataset / "Data_Entry_2017.csv")
    table = read_reread_table(dataset / "reread.csv", DEFAULT_VOCABULARY, "reread_1")
    return compute_priors(config, mined, [table], DEFAULT_VOCABULARY).document


@pytest.fixture(scope="module")
def priors_run(tiny_cohort, tmp_path_factory):
    """One CLI run on the tiny cohort, logged into its own MLflow store."""
    root = tmp_path_factory.mktemp("priors_run")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # an earlier run's marker of no re-read table, which a run with one removes
    (root / "out").mkdir()
    (root / "out" / PRIORS_SKIPPED_FILE).write_text('{"skipped": true, "reason": "earlier"}')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)
        dataset = tiny_cohort / "dataset"
        code = main(
            [
                "priors",
                "--params",
                str(PARAMS),
                "--labels",
                str(dataset / "Data_Entry_2017.csv"),
                "--reread",
                str(dataset / "reread.csv"),
                "--out",
                str(root / "out"),
                "--metrics",
                str(root / "metrics.json"),
                "--plots",
                str(root / "plots"),
            ]
        )
    return code, root, uri


@pytest.mark.slow  # these three share `priors_run`: a CLI run with MLflow, ~8 s
def test_cli_writes_priors_metrics_and_plots(priors_run):
    code, root, _ = priors_run
    assert code == 0
    doc = json.loads((root / "out" / "priors.json").read_text())
    assert not (root / "out" / PRIORS_SKIPPED_FILE).exists()
    assert doc["schema"] == "cxrpriv.priors/1" and list(doc["findings"]) == doc["findings_order"]
    table = doc["tables"][0]
    assert table["layout"] == "reader_wide" and table["truth"] == "dawid_skene" and table["n_readers"] == 4
    assert doc["comorbidity"]["source"] == {"table": "reread_1", "labels": "dawid_skene"}
    # a few dozen re-read images: every rate is flagged, none is passed off as measured
    assert not any(e["status"] == "measured" for e in doc["findings"].values())
    assert all(e["flags"] for e in doc["findings"].values())
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["tables"]["reread_1"]["n_images"] == table["n_images"] > 0
    plots = {p.name for p in (root / "plots").iterdir()}
    assert {"noise_rates.png", "kappa.png", "comorbidity.png", "readers_reread_1.png"} <= plots


@pytest.mark.slow  # shares `priors_run`
def test_cli_logs_one_mlflow_run_with_tables_as_artifacts(priors_run):
    _, _, uri = priors_run
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["cxrpriv.stage"] == "priors"
    assert run.data.tags["cxrpriv.priors.layouts"] == "reader_wide"
    assert run.data.params["priors.min_cases"] == "20"
    assert run.data.metrics["tables.reread_1.n_readers"] == 4
    assert "tables.reread_1.fleiss_kappa_mean" in run.data.metrics
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"priors.json", "metrics.json", "tables", "plots"} <= top
    tables = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
    names = ("findings", "noise_rates", "reader_models", "kappa", "comorbidity")
    assert {f"tables/{n}.csv" for n in names} <= tables


@pytest.mark.slow  # shares `priors_run`
def test_no_patient_id_reaches_any_output(priors_run, tiny_cohort):
    _, root, uri = priors_run
    ids = pd.read_csv(tiny_cohort / "dataset" / "Data_Entry_2017.csv", dtype=str)["Patient ID"].unique()
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, ids)) + r")\b")
    for path in (root / "out" / "priors.json", root / "metrics.json"):
        assert not pattern.search(path.read_text()), path.name
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    logged = json.dumps([run.data.params, run.data.tags, run.data.metrics])
    assert not pattern.search(logged)


def test_dawid_skene_recovers_the_simulated_radiologists(cohort_priors, cohort):
    """Estimated reader rates against answer_key/readers.json, within their binomial sampling error."""
    doc = cohort_priors
    truth_rates = json.loads((cohort / "answer_key" / "readers.json").read_text())
    images = pd.read_parquet(cohort / "answer_key" / "images.parquet").set_index("image_index")
    models = doc["tables"][0]["reader_models"]
    checked = 0
    for finding, model in models.items():
        true_labels = images[f"true_{finding}"]
        n_pos, n_neg = int(true_labels.sum()), int((1 - true_labels).sum())
        for reader, estimate in model["readers"].items():
            sens = truth_rates[reader]["sensitivity"][finding]
            spec = truth_rates[reader]["specificity"][finding]
            # 4 standard errors of a proportion on this many images, plus a little for the latent labels
            assert abs(estimate["specificity"] - spec) < 4 * np.sqrt(spec * (1 - spec) / n_neg) + 0.01, (
                finding,
                reader,
            )
            if n_pos >= 20:  # rarer findings have too few positives to say anything about sensitivity
                assert abs(estimate["sensitivity"] - sens) < 4 * np.sqrt(sens * (1 - sens) / n_pos) + 0.02, (
                    finding,
                    reader,
                )
                checked += 1
    assert checked >= 4 * 4  # at least four findings with enough positives, four readers each


def test_the_cleaned_labels_reproduce_the_true_noise_rates(cohort_priors, cohort):
    """P(true | mined) on Dawid-Skene labels is close to the same quantity on the answer key's true labels."""
    doc = cohort_priors
    assert {"Atelectasis", "Effusion", "Infiltration"} <= {
        f for f, e in doc["findings"].items() if e["status"] == "measured"
    }
    images = pd.read_parquet(cohort / "answer_key" / "images.parquet")
    for finding, entry in doc["findings"].items():
        if entry["status"] != "measured":
            continue
        mined, true = images[f"mined_{finding}"] == 1, images[f"true_{finding}"] == 1
        # Four readers with 70-95% sensitivity still mislabel a few images after Dawid-Skene; among the
        # 20-80 mined positives here, 0-4 such images were seen over four seeds: allow five.
        tolerance = max(0.06, 5 / int(mined.sum()))
        assert entry["p_true_given_mined_pos"] == pytest.approx(true[mined].mean(), abs=tolerance), finding
        assert entry["p_true_given_mined_neg"] == pytest.approx(true[~mined].mean(), abs=0.03), finding


def test_cli_reports_bad_inputs_clearly(tiny_cohort, tmp_path, caplog):
    bad = tmp_path / "reread.csv"
    frame = pd.read_csv(tiny_cohort / "dataset" / "reread.csv")
    frame = frame.rename(columns={"Hernia": "Hernia of the diaphragm"})
    frame.to_csv(bad, index=False)
    labels = str(tiny_cohort / "dataset" / "Data_Entry_2017.csv")
    common = [
        "--params",
        str(PARAMS),
        "--labels",
        labels,
        "--out",
        str(tmp_path / "out"),
        "--metrics",
        str(tmp_path / "m.json"),
        "--plots",
        str(tmp_path / "plots"),
    ]
    with caplog.at_level(logging.ERROR):
        assert main(["priors", *common, "--reread", str(bad)]) == 2
    assert "unknown finding(s) ['Hernia of the diaphragm']" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert (
            main(
                [
                    "priors",
                    *common,
                    "--reread",
                    str(bad),
                    "--reread",
                    str(bad),
                    "--reread-layout",
                    "auto",
                    "--reread-layout",
                    "auto",
                    "--reread-layout",
                    "auto",
                ]
            )
            == 2
        )
    assert "2 --reread table(s) but 3 --reread-layout value(s)" in caplog.text
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exited:
        main(["priors", *common, "--confidence", "1.5"])
    assert exited.value.code == 2


def test_cli_without_a_reread_table_writes_the_skipped_marker_and_its_metrics(tmp_path, caplog):
    # dvc.yaml passes `--reread ""` for an archive without radiologist re-reads: the stage succeeds with
    # no priors.json, and DVC's metrics and plots outputs exist
    out = tmp_path / "out"
    args = ["priors", "--params", str(PARAMS), "--labels", "", "--reread", "", "--out", str(out)]
    args += ["--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "plots")]
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    assert json.loads((out / PRIORS_SKIPPED_FILE).read_text())["reason"] == 'no re-read table (--reread "")'
    assert not (out / PRIORS_FILE).exists()
    assert json.loads((tmp_path / "m.json").read_text()) == {"skipped": 1}
    assert (tmp_path / "plots").is_dir()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "without label-noise priors" in warning.getMessage()


def test_cli_with_a_reread_table_that_is_missing_is_an_input_error(tmp_path, caplog):
    missing = tmp_path / "reread.csv"
    args = ["priors", "--params", str(PARAMS), "--labels", "", "--reread", str(missing)]
    args += ["--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json")]
    with caplog.at_level(logging.ERROR):
        assert main([*args, "--plots", str(tmp_path / "plots")]) == 2
    assert "re-read table reread_1 (reread.csv): file not found" in caplog.text
    assert not (tmp_path / "out").exists()


def test_cli_help_lists_the_params_and_io_options(capsys):
    with pytest.raises(SystemExit):
        main(["priors", "--help"])
    out = capsys.readouterr().out
    for option in ("--min-cases", "--prior-basis", "--reread-layout", "--vocabulary", "--no-labels"):
        assert option in out
