"""Every code block in the README runs as written (in a fresh folder, after the demo's data is written), or says
in an HTML comment above it why a test cannot run it and which test covers it instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- not run by tests: (?P<why>[^>]+) -->\n)?```(?P<lang>python|bash)\n(?P<code>.*?)```",
                   re.S)


def blocks(lang: str) -> list[re.Match]:
    return [m for m in BLOCK.finditer((ROOT / "README.md").read_text()) if m["lang"] == lang]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_demo_data.py"), str(work / "demo-data")],
                   check=True, capture_output=True)
    return work


def test_every_block_runs_or_names_the_test_that_covers_it():
    for match in blocks("python") + blocks("bash"):
        if match["why"]:
            assert "test" in match["why"], match["why"]
    assert blocks("python") and not any(m["why"] for m in blocks("python"))  # every Python example runs


def test_the_python_blocks_run_in_order(folder):
    code = "\n".join(m["code"] for m in blocks("python"))
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True,
                            env={**os.environ, "DEEPWELL_TRACK": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (folder / "my-model" / "metrics.json").is_file()


def test_the_command_line_blocks_run(folder):
    runnable = [m["code"] for m in blocks("bash") if not m["why"]]
    assert runnable
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DEEPWELL_TRACK": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    printed = []
    for code in runnable:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=folder, capture_output=True,
                                text=True, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        printed.append(result.stdout)
    assert (folder / "scored.csv").is_file() and any("run_id" in out for out in printed)  # the tracking block
    assert (folder / "edge-scored.csv").is_file()  # the edge block
