"""Shared fixtures: small real tables (scikit-learn's bundled data, a sample of Adult) written to files."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from deepwell.sample_data import write_digits

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FAST = {"epochs": 4, "seed": 0}


class Server:
    """A real uvicorn server on a free local port, in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a server a test starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True, scope="session")
def _no_side_effects_outside_tmp(tmp_path_factory):
    """Tests never write to the user's ~/.cache nor an mlflow.db in the working directory."""
    import os

    os.environ["DEEPWELL_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["DEEPWELL_TRACK"] = "0"  # tracking tests turn it on explicitly (track=True)
    # one network per training unless a test asks for a preset: the ensemble tests (test_ensemble.py) cover
    # the balanced default, and five networks per small fit would make the suite five times slower
    os.environ["DEEPWELL_PRESET"] = "fast"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield


@pytest.fixture(autouse=True)
def _quiet_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.fixture(scope="session")
def breast_cancer_csv(tmp_path_factory) -> Path:
    table = load_breast_cancer(as_frame=True).frame
    table["diagnosis"] = table.pop("target").map({0: "malignant", 1: "benign"})
    path = tmp_path_factory.mktemp("data") / "breast_cancer.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def wine_frame() -> pd.DataFrame:
    table = load_wine(as_frame=True).frame
    table["cultivar"] = table.pop("target").map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return table


@pytest.fixture(scope="session")
def diabetes_frame() -> pd.DataFrame:
    table = load_diabetes(as_frame=True, scaled=False).frame
    return table.rename(columns={"target": "progression"})


def shared_sample(name: str, rows: int, tmp_path_factory) -> Path:
    """A seeded sample of a table in ../shared/datasets, written to a temporary CSV (skips when absent)."""
    source = SHARED / name
    if not source.exists():
        pytest.skip(f"{source} is absent (the shared datasets folder sits beside the repository)")
    path = tmp_path_factory.mktemp("data") / f"sample_{name}"
    pd.read_csv(source).sample(rows, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def adult_csv(tmp_path_factory) -> Path:
    """2,000 rows of ../shared/datasets/adult.csv (numbers, categories, missing values)."""
    return shared_sample("adult.csv", 2000, tmp_path_factory)


@pytest.fixture(scope="session")
def sms_csv(tmp_path_factory) -> Path:
    """1,500 rows of ../shared/datasets/sms_spam.csv (free text)."""
    return shared_sample("sms_spam.csv", 1500, tmp_path_factory)


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits"), per_class=40)


@pytest.fixture(scope="session")
def spoken_words(tmp_path_factory) -> Path:
    """4 words × 6 espeak-ng voices × 2 speeds as WAV files; words.csv with audio, word, voice, split."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    from deepwell.sample_data import VOICES, write_spoken_words

    return write_spoken_words(tmp_path_factory.mktemp("words"), words=["yes", "no", "stop", "go"],
                              voices=VOICES[:6], speeds=(140, 180), pitches=(50,), test_voices=1,
                              validation_voices=1)


def wait_until_ready(process, base: str, seconds: float) -> None:
    """Until the `deepwell serve` process answers its readiness probe (or fails the test when it exits)."""
    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a proxy with no app yet
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.2)
