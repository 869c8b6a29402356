"""The edge runtime installed alone: the deepwell-edge wheel (edge/pyproject.toml) in a fresh virtual environment
that holds only its dependencies, where importing and predicting never touches torch, pandas or scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import tomllib

import deepwell as dw

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "sklearn", "scipy", "deepwell.features", "deepwell.model")


def edge_wheel(folder: Path) -> Path:
    """The deepwell-edge wheel, built from a copy of edge/ and src/deepwell/edge (nothing written in the repo)."""
    import shutil

    source = folder / "source"
    (source / "edge").mkdir(parents=True)
    shutil.copy2(ROOT / "edge" / "pyproject.toml", source / "edge" / "pyproject.toml")
    shutil.copytree(ROOT / "src" / "deepwell" / "edge", source / "src" / "deepwell" / "edge",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(folder), str(source / "edge")], check=True, capture_output=True)
    return next(folder.glob("deepwell_edge-*.whl"))


def dependency_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions `requirements` need, transitively (markers evaluated, extras not taken)."""
    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    pending = list(requirements)
    while pending:
        requirement = Requirement(pending.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in found:
            continue
        found[name] = metadata.distribution(requirement.name)
        pending.extend(found[name].requires or [])
    return found


def link_distributions(distributions: dict[str, metadata.Distribution], site: Path) -> None:
    """Each distribution's top-level files and folders (its .dist-info too), linked into `site`."""
    for distribution in distributions.values():
        for top in {Path(str(f)).parts[0] for f in distribution.files or []}:
            source = Path(str(distribution.locate_file(top)))
            if source.exists() and top != ".." and not (site / top).exists():
                (site / top).symlink_to(source)


@pytest.fixture(scope="module")
def exported(adult_csv, tmp_path_factory) -> tuple[Path, Path, list]:
    tmp = tmp_path_factory.mktemp("edge_install")
    table = pd.read_csv(adult_csv)
    model = dw.train(table, "income", output=tmp / "runs", epochs=1, seed=0, quiet=True, track=False)
    model.export(tmp / "edge", data=None)
    rows = tmp / "rows.csv"
    table.drop(columns="income").head(20).to_csv(rows, index=False)
    return tmp / "edge", rows, model.predict(rows).tolist()


def test_the_edge_wheel_runs_in_an_environment_without_torch_pandas_or_sklearn(exported, tmp_path):
    folder, rows, expected = exported
    wheel = edge_wheel(tmp_path / "wheel")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    requirements = tomllib.loads((ROOT / "edge" / "pyproject.toml").read_text())["project"]["dependencies"]
    closure = dependency_closure(requirements)
    assert not {"torch", "pandas", "scikit-learn", "scipy", "deepwell"} & set(closure)
    link_distributions(closure, site)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    script = f"""
import json, sys
import deepwell.edge as edge
model = edge.load({str(folder)!r})
out = model.predict({str(rows)!r}).predictions
heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'sklearn', 'scipy')]
try:
    import torch
    torch_importable = True
except ImportError:
    torch_importable = False
print(json.dumps({{"predictions": out, "heavy": heavy, "torch_importable": torch_importable,
                  "file": edge.__file__}}))
"""
    done = subprocess.run([str(python), "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["predictions"] == expected
    assert result["heavy"] == [] and result["torch_importable"] is False
    assert result["file"].startswith(str(site))  # the wheel's copy, not the repository's
    command = subprocess.run([str(python), "-I", "-m", "deepwell.edge.cli", "predict", str(folder), str(rows)],
                             capture_output=True, text=True, cwd=tmp_path)
    assert command.returncode == 0, command.stderr[-2000:]
    assert command.stdout.splitlines()[0].endswith("prediction,probability_<=50K,probability_>50K")


def test_importing_the_edge_runtime_in_the_full_package_stays_light():
    code = ("import sys, deepwell.edge, deepwell.edge.model, deepwell.edge.columns; "
            f"print([m for m in sys.modules if m.startswith({HEAVY!r})])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
