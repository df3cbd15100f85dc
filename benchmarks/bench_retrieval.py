"""Benchmark the retrieval search (the linkage attack) at scale: a gallery of N images with planted
identities, every image a query against all the others (self excluded), features given.

Measures wall time and peak memory of ``cxrpriv.reid.retrieval.retrieval_metrics`` (chunked shortlist by
feature distance, re-scoring with a verification head, mAP@R / R-precision / P@1), and checks a sample of
queries' shortlists against brute force.

    python benchmarks/bench_retrieval.py --gallery 100000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np
import torch

from cxrpriv.reid.retrieval import retrieval_metrics, shortlist


def planted_features(
    n: int, dim: int, per_identity: float, noise: float, seed: int
) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_ids = max(1, int(n / per_identity))
    ids = rng.integers(0, n_ids, n)
    centres = rng.normal(size=(n_ids, dim)).astype(np.float32)
    features = centres[ids] + noise * rng.normal(size=(n, dim)).astype(np.float32)
    return torch.from_numpy(features), ids


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-identity", type=float, default=3.0, help="Mean images per identity.")
    parser.add_argument("--noise", type=float, default=0.8)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--check", type=int, default=200, help="Queries checked against brute force.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    features, ids = planted_features(args.gallery, args.dim, args.per_identity, args.noise, args.seed)
    # A verification head as the trained one behaves: the score falls with the mean absolute difference.
    head_layer = torch.nn.Linear(args.dim, 1)
    with torch.no_grad():
        head_layer.weight.fill_(-1.0 / args.dim)
        head_layer.bias.fill_(1.0)

    def head(difference: torch.Tensor) -> torch.Tensor:
        return head_layer(difference).squeeze(-1)

    before = rss_mb()
    start = time.perf_counter()
    summary, _ = retrieval_metrics(features, ids, head, k=args.k, chunk=args.chunk)
    seconds = time.perf_counter() - start
    peak = rss_mb()

    rng = np.random.default_rng(args.seed + 1)
    sample = torch.as_tensor(rng.choice(args.gallery, min(args.check, args.gallery), replace=False))
    got = shortlist(features[sample], features, args.k + 1)  # +1: the query itself comes first
    distances = torch.cdist(features[sample].double(), features.double())
    expected = distances.topk(args.k + 1, dim=1, largest=False).indices
    agree = float((got == expected).float().mean())

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"command: python benchmarks/bench_retrieval.py --gallery {args.gallery} --k {args.k} "
        f"--chunk {args.chunk}"
    )
    print(
        "| gallery | dim | k | chunk | wall time (s) | peak RSS (MB) | RSS before search (MB) | "
        "mAP@R | P@1 | shortlist = brute force |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.gallery:,} | {args.dim} | {args.k} | {args.chunk} | {seconds:.1f} | {peak:.0f} | "
        f"{before:.0f} | {summary['map_at_r']:.4f} | {summary['precision_at_1']:.4f} | "
        f"{agree:.4f} of {len(sample)} queries' lists |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
