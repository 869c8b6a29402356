"""report.html: written for every run, rebuilt by `deepwell report`, self-contained, and rendered by a real
headless Chromium (Debian's `chromium`, driven by playwright) with no console errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import deepwell as dw
from deepwell.reports.build import SECTIONS

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ALWAYS = ["overview", "data", "configuration", "learning-curves", "evaluation", "predictions", "diagnosis",
          "data-curve", "fairness", "explanations"]


@pytest.fixture(scope="module")
def classifier(wine_frame, tmp_path_factory) -> dw.Model:
    return dw.train(wine_frame, "cultivar", output=tmp_path_factory.mktemp("runs"), epochs=5, seed=0, quiet=True)


@pytest.fixture(scope="module")
def regressor(diabetes_frame, tmp_path_factory) -> dw.Model:
    return dw.train(diabetes_frame, "progression", output=tmp_path_factory.mktemp("runs"), epochs=5, seed=0,
                    quiet=True)


def test_every_run_writes_a_self_contained_report(classifier):
    page = (classifier.run_dir / "report.html").read_text()
    for anchor in ALWAYS:
        assert f'<section id="{anchor}">' in page
    assert [a for a, _, _ in SECTIONS] == ALWAYS
    assert not re.search(r"""(src|href)=["']https?://""", page)  # no CDN: opens offline
    assert "<script" not in page
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert {"learning curves", "confusion matrix", "ROC and precision-recall curves",
            "class balance per split", "importance"} <= set(images)
    assert "Permutation importance on the test split" in page and "Integrated Gradients on" in page
    assert "barolo" in page and "trainable parameters" in page and "Not computed for this run yet" in page


def test_regression_report_has_a_residual_plot(regressor):
    page = (regressor.run_dir / "report.html").read_text()
    assert 'alt="residual plot"' in page and 'alt="confusion matrix"' not in page


def test_report_command_rebuilds_the_page_and_a_later_section_fills_its_slot(classifier):
    report = classifier.run_dir / "report.html"
    report.unlink()
    extra = classifier.run_dir / "data_curve.json"
    extra.write_text('{"conclusion": "more data would help", "summary": "validation error still falling"}')
    try:
        result = subprocess.run([sys.executable, "-m", "deepwell.cli.main", "report", str(classifier.run_dir)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        page = report.read_text()
        start = page.index('<section id="data-curve">')
        section = page[start:page.index("</section>", start)]
        assert "more data would help" in section and "Not computed" not in section
    finally:
        extra.unlink()
        dw.build_report(classifier.run_dir)


def test_report_of_an_unfinished_run_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "config.yaml").write_text("target: y\n")
    result = subprocess.run([sys.executable, "-m", "deepwell.cli.main", "report", str(run)], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "300"})
    assert result.returncode == 2 and "has no metrics.json" in result.stderr


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is needed for the report tests (make test installs it).")
    return path


@pytest.mark.parametrize("which", ["classifier", "regressor"])
def test_report_renders_in_headless_chromium_without_console_errors(which, request):
    from playwright.sync_api import sync_playwright

    model = request.getfixturevalue(which)
    SCREENSHOTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto((model.run_dir / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        for anchor in ALWAYS:
            assert page.locator(f"section#{anchor}").is_visible()
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.naturalWidth])")
        assert sizes and all(width > 100 for _, width in sizes), sizes  # every figure decoded
        page.screenshot(path=str(SCREENSHOTS / f"report-{which}.png"), full_page=True)
        browser.close()
    assert problems == []
    assert (SCREENSHOTS / f"report-{which}.png").stat().st_size > 10_000
