"""Write the synthetic cohort's statistics beside the real table's, as Markdown, from its metrics file.

    python benchmarks/cohort_report.py metrics/synthesize.json > /tmp/cohort_tables.md

The tables go into docs/benchmark.md; every number comes from the metrics file the stage wrote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrpriv.synth.stats import FINDINGS, load_label_noise


def render(metrics: dict) -> str:
    noise = load_label_noise()
    lines = [
        "| | synthetic | ChestX-ray14 |",
        "|---|---|---|",
        f"| patients | {metrics['n_patients']} | 30,805 |",
        f"| images | {metrics['n_images']} | 112,120 |",
        f"| images per patient (mean) | {metrics['images_per_patient_mean']:.2f} | "
        f"{metrics['images_per_patient_mean_real']:.2f} "
        f"({metrics['images_per_patient_mean_real_capped']:.2f} capped like the cohort) |",
        f"| AP fraction of images | {metrics['ap_fraction']:.3f} | {metrics['ap_fraction_real']:.3f} |",
        f"| male patients | {metrics['male_fraction']:.3f} | {metrics['male_fraction_real']:.3f} |",
        f"| naive attacker AUC (32x32 NCC) | {metrics['naive_attacker_auc']} | - |",
        "",
        "| finding | true prevalence | mined (released) prevalence | ChestX-ray14 prevalence (text-mined) | "
        "mined sensitivity: cohort / target | mined false-positive rate: cohort / target | noise source |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FINDINGS:
        p, n = metrics["prevalence"][f], metrics["label_noise"][f]
        lines.append(
            f"| {f} | {p['true']:.4f} | {p['mined']:.4f} | {p['real']:.4f} | "
            f"{n['sensitivity']:.3f} / {n['target_sensitivity']:.3f} | "
            f"{n['false_positive_rate']:.4f} / {n['target_false_positive_rate']:.4f} | {noise[f].source} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path)
    args = parser.parse_args(argv)
    print(render(json.loads(args.metrics.read_text())), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
