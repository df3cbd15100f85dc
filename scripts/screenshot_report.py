"""Screenshot the evaluate stage's HTML report with headless Chromium (``apt-get install -y chromium``).

    python -m scripts.screenshot_report --html <the stage's report.html>   # a real report
    python -m scripts.screenshot_report --crafted --work-dir /work/exp/evaluate/crafted

Both write ``docs/img/evaluate_report.png`` unless ``--out`` says otherwise. ``--crafted`` first builds a
report from the crafted results of the tests (``tests/evaluate/conftest.py``, with one retrained seed made
too strong so that the page shows a failed check and its reason): made-up numbers, for the layout only.
Run from the repository root.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DEFAULT_OUT = Path("docs/img/evaluate_report.png")
WINDOW = "1200,1600"


def screenshot(html_path: Path, out_path: Path, window: str = WINDOW) -> Path:
    """Render ``html_path`` headless and write a PNG of the first ``window`` pixels of the page."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        raise SystemExit(f"none of {', '.join(BROWSERS)} is installed (apt-get install -y chromium)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # containers and CI run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--hide-scrollbars",
        f"--screenshot={out_path.resolve()}",
        f"--window-size={window}",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    if not out_path.is_file():
        raise SystemExit(f"{browser} wrote no screenshot to {out_path}")
    return out_path


def crafted_report(work_dir: Path) -> Path:
    """The HTML report of the tests' crafted results (numbers made up), plots included."""
    from cxrpriv.evaluate.gate import GateConfig, decide
    from cxrpriv.evaluate.html import write_html_report
    from cxrpriv.evaluate.report import ExampleFilms, write_plots
    from cxrpriv.evaluate.results import summarize_seeds
    from tests.evaluate.conftest import build_results, chosen_variant, example_films

    results = build_results()
    siamese = chosen_variant(results)["privacy"]["retrained"]["siamese"]
    # One lucky seed: the family's mean stays below the limit, the worst-seed check fails.
    siamese["runs"][1].update(auc=0.67, auc_low=0.64, auc_high=0.70)
    siamese.update(summarize_seeds(siamese["runs"]))
    originals, anonymized = example_films(count=3, size=64)
    gate = GateConfig()
    plots = write_plots(results, ExampleFilms(originals, anonymized), work_dir / "plots", gate)
    return write_html_report(results, decide(results, gate), plots, work_dir / "report.html")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--html", type=Path, help="an existing report to render")
    source.add_argument("--crafted", action="store_true", help="render a report of made-up results")
    parser.add_argument(
        "--work-dir", type=Path, help="--crafted: where its report goes (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG (default {DEFAULT_OUT})")
    parser.add_argument("--window", default=WINDOW, help=f"width,height in pixels (default {WINDOW})")
    args = parser.parse_args(argv)
    if args.html:
        print(screenshot(args.html, args.out, args.window))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        html_path = crafted_report(args.work_dir or Path(scratch))
        print(screenshot(html_path, args.out, args.window))
    return 0


if __name__ == "__main__":
    sys.exit(main())
