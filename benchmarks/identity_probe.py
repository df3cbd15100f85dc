"""Probe whether identity in the synthetic cohort is learnable: a small siamese CNN trained for a fixed
number of steps, against the naive thumbnail attacker, on held-out patients.

This is a calibration aid for the cohort (e.g. after changing jitter or ``anatomy_variability``), not the
verifier stage: it renders films straight from the generator (no DICOM round trip), gives every patient at
least two films, and trains a deliberately small network.

    python benchmarks/identity_probe.py --patients 600 --steps 200
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from cxrpriv.config import load_stage_config
from cxrpriv.synth.acquisition import sample_acquisition
from cxrpriv.synth.anatomy import sample_anatomy
from cxrpriv.synth.config import SynthesizeConfig
from cxrpriv.synth.findings import sample_sites
from cxrpriv.synth.naive_attack import pair_attack, thumbnail
from cxrpriv.synth.render import render_image
from cxrpriv.synth.stats import load_cohort_stats, load_lung_shape_model
from cxrpriv.synth.timeline import TimelineSampler


def render_films(config: SynthesizeConfig, n_patients: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    sampler = TimelineSampler(load_cohort_stats(), config.max_images_per_patient)
    shape_model = load_lung_shape_model()
    films, patients = [], []
    for p in range(n_patients):
        rng = np.random.default_rng([config.seed, p])
        timeline = sampler.sample(rng)
        anatomy = sample_anatomy(rng, shape_model, timeline.sex, config.anatomy_variability)
        sites = sample_sites(rng)
        for k in range(min(max(2, len(timeline.studies)), 4)):
            study = timeline.studies[min(k, len(timeline.studies) - 1)]
            acq = sample_acquisition(rng, config, study.view, study.days_from_first / 365.25)
            image, _ = render_image(anatomy, acq, study.labels, sites, size=2 * size, rng=rng)
            films.append(image.reshape(size, 2, size, 2).mean(axis=(1, 3)))
            patients.append(p)
    return np.stack(films), np.array(patients)


class SmallSiamese(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        channels = [1, 32, 64, 128, 128]
        self.blocks = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(a, b, 3, padding=1),
                    nn.BatchNorm2d(b),
                    nn.ReLU(),
                    nn.Conv2d(b, b, 3, padding=1),
                    nn.BatchNorm2d(b),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                )
                for a, b in itertools.pairwise(channels)
            ]
        )
        self.embed = nn.LazyLinear(128)
        self.head = nn.Linear(128, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.blocks(x).flatten(1))

    def pair_logits(self, e: torch.Tensor) -> torch.Tensor:
        return self.head((e[:, None, :] - e[None, :, :]).abs()).squeeze(-1)


def jitter(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Light affine augmentation: without it the network memorizes films instead of anatomy."""
    n = len(x)
    angle = torch.tensor(rng.normal(0, 0.03, n), dtype=torch.float32)
    scale = torch.tensor(1 + rng.normal(0, 0.03, n), dtype=torch.float32)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, 0, 1], theta[:, 1, 0] = -torch.sin(angle), torch.sin(angle)
    theta[:, :, 2] = torch.tensor(rng.normal(0, 0.03, (n, 2)), dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="border")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--patients", type=int, default=600)
    parser.add_argument("--held-out", type=int, default=120)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = load_stage_config(SynthesizeConfig, "synthesize", args.params, "default")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    films, patients = render_films(config, args.patients, args.size)
    print(f"rendered {len(films)} films of {args.patients} patients in {time.perf_counter() - start:.0f} s")
    x = torch.tensor(films)[:, None]
    x = (x - x.mean((2, 3), keepdim=True)) / (x.std((2, 3), keepdim=True) + 1e-6)
    test = patients >= args.patients - args.held_out
    by_patient: dict[int, list[int]] = {}
    for i in np.nonzero(~test)[0]:
        by_patient.setdefault(int(patients[i]), []).append(int(i))
    train_ids = list(by_patient)

    net = SmallSiamese()
    net.features(x[:2])  # materialize the lazy layer before the optimizer sees it
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    start = time.perf_counter()
    for _ in range(args.steps):
        net.train()
        # 32 patients x 2 films, every pair in the batch scored: 32 positives against 1,984 negatives.
        chosen = rng.choice(len(train_ids), 32, replace=False)
        index = [int(i) for c in chosen for i in rng.choice(by_patient[train_ids[c]], 2, replace=False)]
        labels = torch.tensor(np.repeat(chosen, 2))
        logits = net.pair_logits(net.features(jitter(x[index], rng)))
        target = (labels[:, None] == labels[None, :]).float()
        off_diagonal = ~torch.eye(len(index), dtype=torch.bool)
        loss = F.binary_cross_entropy_with_logits(
            logits[off_diagonal], target[off_diagonal], pos_weight=torch.tensor(30.0)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = time.perf_counter() - start

    net.eval()
    held = np.nonzero(test)[0]
    with torch.no_grad():
        scores = net.pair_logits(net.features(x[held])).numpy()
    upper = np.triu_indices(len(held), 1)
    same = (patients[held][:, None] == patients[held][None, :])[upper]
    cnn_auc = roc_auc_score(same, scores[upper])
    thumbs = np.stack([thumbnail(f, 32) for f in films[held]])
    naive = pair_attack(thumbs, patients[held], 100_000, np.random.default_rng(1))
    print("| held-out patients | same-patient pairs | CNN steps | CNN train time (s) | CNN AUC | naive AUC |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.held_out} | {int(same.sum())} | {args.steps} | {train_s:.0f} | {cnn_auc:.3f} "
        f"| {naive.auc:.3f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
