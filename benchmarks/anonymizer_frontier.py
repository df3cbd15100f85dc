"""The privacy-utility frontier on one cohort: learned anonymizers (train_anonymizer settings), DP-Pix and
random warps, each applied to the whole ingest output and measured by the evaluate stage (the frozen
verifier, attackers retrained on the anonymized films, the frozen classifier). Prints a Markdown table and
writes ``<out>/results.json`` (the evaluate results format) and the trade-off plot.

    python benchmarks/anonymizer_frontier.py --out /work/exp/frontier --seeds 1
    python benchmarks/anonymizer_frontier.py --out /work/exp/frontier --learned mu=0.2 utility_weight=5

Each ``--learned`` argument is one variant: space-separated ``key=value`` train_anonymizer overrides in one
string (e.g. ``"mu=0.2 noise_channels=2"``); ``--dp-pix`` cell sides and ``--random-warp`` bounds add the
baselines. Trained anonymizers and anonymized datasets are kept under ``--out`` and reused on a rerun.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any

import yaml

from cxrpriv.anonymize.config import TrainAnonymizerConfig
from cxrpriv.anonymize_dataset.config import AnonymizeConfig
from cxrpriv.anonymize_dataset.methods import build_method
from cxrpriv.anonymize_dataset.stage import anonymize_dataset
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.config import load_stage_config
from cxrpriv.evaluate.attackers import RetrainedFamily
from cxrpriv.evaluate.config import EvaluateConfig
from cxrpriv.evaluate.gate import GateConfig
from cxrpriv.evaluate.report import write_plots
from cxrpriv.evaluate.results import utility_drop, worst_attacker
from cxrpriv.evaluate.stage import EvaluateInputs, evaluate, folder_name
from cxrpriv.reid.attack import AttackSettings
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.training.accelerator import select_accelerator


def _overrides(text: str) -> dict[str, Any]:
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in text.split())}


def _train(overrides: dict[str, Any], args: argparse.Namespace, out: Path) -> Path:
    """A trained anonymizer (``out``), trained here unless a previous run left one."""
    if (out / "model.pt").is_file():
        return out
    from cxrpriv.anonymize.run import run_train_anonymizer
    from cxrpriv.stages.contract import StageContext

    config = load_stage_config(TrainAnonymizerConfig, "train_anonymizer", overrides=overrides)
    context = StageContext(
        out=out,
        metrics=out / "metrics.json",
        plots=out / "plots",
        profile="default",
        progress=False,
        register_model=False,
    )
    run_train_anonymizer(config, args.ingest, args.verifier, args.classifier, args.priors, context)
    return out


def _anonymize(config: AnonymizeConfig, anonymizer: Path | None, out: Path, args: argparse.Namespace) -> Path:
    if (out / "manifest.parquet").is_file():
        return out
    device = select_accelerator("auto", False).device
    anonymize_dataset(
        config, build_method(config, anonymizer, device), args.ingest, out, device=device, progress=False
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest", type=Path, default=Path("data/ingest"))
    parser.add_argument("--verifier", type=Path, default=Path("data/reid"))
    parser.add_argument("--classifier", type=Path, default=Path("data/classifier"))
    parser.add_argument("--priors", type=Path, default=Path("data/priors/priors.json"))
    parser.add_argument("--answer-key", type=Path, default=Path("data/synthetic/answer_key"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--learned", nargs="*", default=[""], help="train_anonymizer overrides per variant")
    parser.add_argument("--dp-pix", type=int, nargs="*", default=[8], help="DP-Pix cell sides b")
    parser.add_argument("--random-warp", type=float, nargs="*", default=[0.1], help="random warp bounds mu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="retrained attacker seeds")
    parser.add_argument("--families", nargs="+", default=["default"], help="train_reid profiles to retrain")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    base = load_stage_config(AnonymizeConfig, "anonymize")
    datasets = []
    for text in args.learned:
        name = folder_name(text) or "default"  # "": the params default's anonymizer
        trained = _train(_overrides(text), args, args.out / "anonymizers" / name)
        config = dataclasses.replace(base, method="learned")
        datasets.append(_anonymize(config, trained, args.out / "datasets" / f"learned-{name}", args))
    for cell in args.dp_pix:
        config = dataclasses.replace(base, method="dp_pix", dp_pix_cell=cell)
        datasets.append(_anonymize(config, None, args.out / "datasets" / f"dp_pix-b{cell}", args))
    for mu in args.random_warp:
        config = dataclasses.replace(base, method="random_warp", random_warp_mu=mu)
        datasets.append(_anonymize(config, None, args.out / "datasets" / f"random_warp-mu{mu:g}", args))

    evaluate_config = dataclasses.replace(
        load_stage_config(EvaluateConfig, "evaluate"), retrain_classifier=False
    )
    reid = load_stage_config(TrainReidConfig, "train_reid")
    families = tuple(
        RetrainedFamily(p, load_stage_config(TrainReidConfig, "train_reid", None, p), tuple(args.seeds))
        for p in args.families
    )
    inputs = EvaluateInputs(
        original=args.ingest,
        anonymized=tuple(datasets),
        verifier=args.verifier,
        classifier=args.classifier,
        attackers=families,
        settings=AttackSettings.of(reid),
        classifier_config=load_stage_config(ClassifierConfig, "train_classifier"),
        priors=args.priors,
        answer_key=args.answer_key,
    )

    def log_run(variant: str, family: str, record: dict[str, Any]) -> None:
        logging.info(
            "%s, %s seed %d: AUC %.4f, P@1 %.3f",
            variant,
            family,
            record["seed"],
            record["auc"],
            record["p_at_1"],
        )

    result = evaluate(evaluate_config, inputs, args.out / "work", progress=False, on_attacker_run=log_run)
    results = result.results
    # The sweep has no single chosen variant: the table and plot show every one against the reference.
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    write_plots(results, None, args.out / "plots", GateConfig.from_settings(evaluate_config))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{__import__('torch').get_num_threads()}; attackers: {', '.join(args.families)}, seeds {args.seeds}"
    )
    print(
        "| variant | frozen verifier AUC | retrained AUC mean (worst) | P@1 worst | classifier AUC | drop |"
    )
    print("|---|---|---|---|---|---|")
    for variant in results["variants"]:
        worst = worst_attacker(variant)
        frozen = variant["privacy"]["frozen_verifier"]
        utility = variant["utility"]["frozen_classifier"]
        drop = utility_drop(results, variant["name"])
        print(
            f"| {variant['name']} | {frozen['auc']:.3f} | {worst.auc_mean:.3f} ({worst.auc_worst:.3f}) | "
            f"{worst.p_at_1_worst:.3f} | {utility['mean_auc']:.3f} | {drop:+.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
