"""The inference server, started for real (uvicorn on 127.0.0.1) and called by clients deepwell did not write:
tritonclient (it speaks the Open Inference Protocol, KServe V2) and plain HTTP for /predict and /invocations."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

import deepwell as dw
from conftest import Server, free_port, wait_until_ready
from deepwell.serving.app import Limits, create_app
from deepwell.serving.recorder import Monitoring
from deepwell.serving.request_log import RequestLog, read_log, request_count

httpclient = pytest.importorskip("tritonclient.http")
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def adult(adult_csv, tmp_path_factory):
    frame = pd.read_csv(adult_csv)
    model = dw.train(frame, "income", config={"training": {"epochs": 2}}, output=tmp_path_factory.mktemp("runs"),
                     quiet=True, track=False)
    return model, frame.drop(columns=["income"]).head(25).reset_index(drop=True)


@pytest.fixture(scope="module")
def server(adult):
    limits = Limits(max_body_bytes=200_000, max_rows=100, max_explain_rows=5)
    with Server(create_app(adult[0], "adult", limits)) as running:
        yield running


def v2_inputs(frame: pd.DataFrame, columns, binary: bool) -> list:
    inputs = []
    for column in columns:
        values = frame[column.name]
        if column.datatype == "FP64":
            array = values.to_numpy(dtype=np.float64)
        else:
            array = np.array([b"" if pd.isna(v) else str(v).encode() for v in values], dtype=np.object_)
        tensor = httpclient.InferInput(column.name, [len(array)], column.datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary tensors", "JSON tensors"])
def test_tritonclient_gets_the_offline_predictions(adult, server, binary):
    from deepwell.serving.schema import input_columns

    model, rows = adult
    client = httpclient.InferenceServerClient(server.url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("adult")
    metadata = client.get_model_metadata("adult")
    assert [i["name"] for i in metadata["inputs"]] == model.input_columns
    assert {o["name"] for o in metadata["outputs"]} == {"label", "probabilities"}
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")]
    result = client.infer("adult", v2_inputs(rows, input_columns(model), binary), outputs=outputs,
                          request_id="req-7")
    assert result.get_response()["id"] == "req-7"
    np.testing.assert_allclose(result.as_numpy("probabilities"), model.predict_proba(rows), atol=1e-6)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
    assert labels == [str(v) for v in model.predict(rows)]


def test_the_explain_route_takes_an_infer_request_and_gives_the_offline_attributions(adult, server):
    """Next to infer, with the same input format: each input column's attribution per row, summing to the output
    minus the baseline's, equal to Model.explain offline."""
    from deepwell.serving.schema import input_columns

    model, rows = adult
    inputs = []
    for column in input_columns(model):
        values = rows[column.name].head(3)
        data = values.astype(float).tolist() if column.datatype == "FP64" else \
            ["" if pd.isna(v) else str(v) for v in values]
        inputs.append({"name": column.name, "shape": [3], "datatype": column.datatype, "data": data})
    answer = requests.post(f"http://{server.url}/v2/models/adult/explain", json={"inputs": inputs}, timeout=60)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["columns"]["data"] == model.input_columns and outputs["attributions"]["shape"] == [
        3, len(model.input_columns)]
    values = np.array(outputs["attributions"]["data"]).reshape(3, -1)
    offline = model.explain(rows.head(3), importance=False)
    np.testing.assert_allclose(values, offline.attributions.values, atol=1e-6)
    gap = np.array(outputs["output"]["data"]) - np.array(outputs["baseline_output"]["data"])
    np.testing.assert_allclose(values.sum(axis=1), gap, atol=2e-3)
    assert outputs["reasons"]["data"][0].split(" · ")[0] in " ".join(offline.reasons[0])
    too_many = {"inputs": [{**i, "shape": [6], "data": i["data"][:1] * 6} for i in inputs]}
    refused = requests.post(f"http://{server.url}/v2/models/adult/explain", json=too_many, timeout=60)
    assert refused.status_code == 413 and "at most 5 per request" in refused.json()["error"]


def test_the_openapi_page_describes_every_input_column(adult, server):
    model, _ = adult
    description = requests.get(f"http://{server.url}/openapi.json", timeout=10).json()["info"]["description"]
    for column in model.input_columns:
        assert f"- `{column}`: " in description
    assert "`workclass`: category, V2 datatype BYTES; levels: " in description and "Private" in description
    assert "`age`: number, V2 datatype FP64" in description and "`probabilities` over" in description
    assert requests.get(f"http://{server.url}/docs", timeout=10).status_code == 200


def test_predict_and_mlflow_invocations_give_the_offline_predictions(adult, server):
    model, rows = adult
    expected = [str(v) for v in model.predict(rows)]
    records = rows.head(5).to_dict(orient="records")
    answer = requests.post(f"http://{server.url}/predict", json={"records": records}, timeout=30).json()
    assert [str(v) for v in answer["predictions"]] == expected[:5]
    assert answer["probabilities"][0][str(model.classes_[1])] == pytest.approx(model.predict_proba(rows)[0, 1],
                                                                                abs=1e-6)
    split = {"dataframe_split": {"columns": list(rows.columns), "data": rows.head(5).values.tolist()}}
    answer = requests.post(f"http://{server.url}/invocations", json=split, timeout=30).json()
    assert [str(v) for v in answer["predictions"]] == expected[:5]
    answer = requests.post(f"http://{server.url}/invocations", json={"dataframe_records": records}, timeout=30)
    assert [str(v) for v in answer.json()["predictions"]] == expected[:5]


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/v2/models/other/infer", {"inputs": []}, 404, "unknown model 'other'; this server serves 'adult'"),
    ("/v2/models/adult/infer", b"{not json", 400, "not valid JSON"),
    ("/v2/models/adult/infer", {"inputs": [{"name": "age", "datatype": "FP64", "shape": [2], "data": [1]}]},
     400, "input 'age': its shape holds 2 element(s), its data 1"),
    ("/v2/models/adult/infer", {"inputs": [{"name": "agee", "datatype": "FP64", "shape": [1], "data": [1]}]},
     400, "unknown input(s) 'agee'"),
    ("/v2/models/adult/infer", {"inputs": [{"name": "age", "datatype": "FP64", "shape": [1], "data": [30]}]},
     400, "lacks input column(s)"),
    ("/v2/models/adult/infer", {"inputs": [{"name": "age", "datatype": "FP9", "shape": [1], "data": [1]}]},
     400, '"datatype" must be one of'),
    ("/predict", {"rows": []}, 400, '{"records": [{column: value'),
    ("/predict", {"records": [{"age": 1}] * 101}, 413, "at most 100 per request"),
    ("/predict", {"records": [{"age": "x" * 300_000}]}, 413, "at most 200000"),
    ("/invocations", {"instances": [1]}, 400, '"dataframe_split"'),
])
def test_bad_requests_get_a_4xx_naming_the_field_and_the_server_keeps_serving(adult, server, path, body,
                                                                               status, message):
    model, rows = adult
    sent = {"data": body} if isinstance(body, bytes) else {"json": body}
    answer = requests.post(f"http://{server.url}{path}", timeout=30, **sent)
    assert answer.status_code == status and message in answer.json()["error"]
    again = requests.post(f"http://{server.url}/predict", json={"records": rows.head(2).to_dict("records")},
                          timeout=30)
    assert again.status_code == 200 and [str(v) for v in again.json()["predictions"]] == \
        [str(v) for v in model.predict(rows.head(2))]


def test_a_token_guards_every_route_but_health(adult):
    with Server(create_app(adult[0], "adult", Limits(token=TOKEN))) as running:
        base = f"http://{running.url}"
        assert requests.get(f"{base}/v2/health/ready", timeout=10).status_code == 200
        refused = requests.get(f"{base}/v2/models/adult", timeout=10)
        assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
        client = httpclient.InferenceServerClient(running.url)
        metadata = client.get_model_metadata("adult", headers={"Authorization": f"Bearer {TOKEN}"})
        assert metadata["name"] == "adult"


def test_an_image_model_takes_file_bytes_and_never_a_path(digits_folder, tmp_path):
    config = {"target": "label", "columns": {"image": {"type": "image", "image": {"size": 16, "width": 8}}},
              "training": {"epochs": 1}}
    model = dw.train(digits_folder, config=config, output=tmp_path, quiet=True, track=False)
    files = sorted(digits_folder.rglob("*.png"))[:4]
    expected = [str(v) for v in model.predict(pd.DataFrame({model.input_columns[0]: [str(f) for f in files]}))]
    column = model.input_columns[0]
    log = tmp_path / "digits.sqlite"
    with Server(create_app(model, "digits", monitoring=Monitoring(log=log))) as running:
        tensor = httpclient.InferInput(column, [len(files)], "BYTES")
        tensor.set_data_from_numpy(np.array([f.read_bytes() for f in files], dtype=np.object_))
        result = httpclient.InferenceServerClient(running.url).infer("digits", [tensor])
        assert [v.decode() for v in result.as_numpy("label")] == expected
        encoded = [{column: base64.b64encode(f.read_bytes()).decode()} for f in files]
        answer = requests.post(f"http://{running.url}/predict", json={"records": encoded}, timeout=30).json()
        assert [str(v) for v in answer["predictions"]] == expected
        refused = requests.post(f"http://{running.url}/predict", json={"records": [{column: str(files[0])}]},
                                timeout=30)
        assert refused.status_code == 400 and "does not read file paths" in refused.json()["error"]
        corrupt = requests.post(f"http://{running.url}/predict", timeout=30, json={"records": [
            encoded[0], {column: base64.b64encode(b"not a picture").decode()}]})
        assert corrupt.status_code == 400 and "row 1: image" in corrupt.json()["error"]
        garbled = requests.post(f"http://{running.url}/predict", json={"records": [{column: "%%%"}]}, timeout=30)
        assert garbled.status_code == 400 and "as base64 text or bytes" in garbled.json()["error"]
        again = requests.post(f"http://{running.url}/predict", json={"records": encoded}, timeout=30).json()
        assert [str(v) for v in again["predictions"]] == expected  # and it keeps serving
        from playwright.sync_api import sync_playwright

        problems: list[str] = []
        with sync_playwright() as p:  # the playground's file picker sends the picture's bytes
            browser, page = browser_page(p, problems)
            page.goto(f"http://{running.url}/")
            page.set_input_files(f"#in-{column}", str(files[1]))
            page.click("#predict")
            page.wait_for_selector("#prediction")
            assert page.text_content("#prediction") == expected[1]
            assert page.locator(".bar").count() == len(model.classes_)
            browser.close()
        assert problems == []
    inputs, outputs = read_log(log)  # files are logged as their measures (and size), never their bytes
    assert len(inputs) == len(outputs) == 3 * len(files) + 1
    assert {s["width"] for s in inputs[column]} == {8.0} and all(s["file_bytes"] > 50 for s in inputs[column])
    assert [r["measure"]["name"] for r in model.reference.to_dict()["inputs"]] == [
        f"{column}:{m}" for m in ("width", "height", "brightness", "contrast")]


def test_deepwell_serve_starts_from_the_command_line_and_sigterm_finishes_the_request_in_flight(adult):
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    model, rows = adult
    port = free_port()
    env = {**os.environ, "DEEPWELL_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "deepwell.cli.main", "serve", str(model.run_dir),
                                "--port", str(port), "--name", "income", "--threads", "1", "--batch-wait", "1"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"

    def post(n: int) -> requests.Response:
        return requests.post(f"{base}/predict", json={"records": rows.head(n).to_dict("records")},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    try:
        wait_until_ready(process, base, 60)
        assert [str(v) for v in post(3).json()["predictions"]] == [str(v) for v in model.predict(rows.head(3))]
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(post, 5)  # waits a second in the batcher (--batch-wait 1)
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            answer = in_flight.result()
        assert answer.status_code == 200
        assert [str(v) for v in answer.json()["predictions"]] == [str(v) for v in model.predict(rows.head(5))]
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught: the exit is SIGTERM's own
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Traceback" not in process.stdout.read()
    # the request log beside the model was flushed on the way out: nothing answered is lost
    assert request_count(model.run_dir / "requests.sqlite") == (2, 8)


def test_two_workers_each_load_the_model_and_answer(adult, tmp_path):
    import os
    import signal

    model, rows = adult
    port = free_port()
    log = tmp_path / "workers.sqlite"
    process = subprocess.Popen([sys.executable, "-m", "deepwell.cli.main", "serve", str(model.run_dir),
                                "--port", str(port), "--workers", "2", "--log", str(log)],
                               env={**os.environ, "DEEPWELL_THREADS": ""}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(process, base, 90)
        expected = [str(v) for v in model.predict(rows.head(3))]
        for _ in range(6):
            answer = requests.post(f"{base}/predict", json={"records": rows.head(3).to_dict("records")}, timeout=30)
            assert [str(v) for v in answer.json()["predictions"]] == expected
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    output = process.stdout.read()
    assert "2 worker(s) × 1 thread(s)" in " ".join(output.split()) and "Traceback" not in output  # 2 CPUs, 2 workers
    assert request_count(log) == (6, 18)  # both workers wrote to the one log, and flushed it


def test_binary_tensors_are_read_and_malformed_ones_named():
    import json
    import struct

    from deepwell.serving.protocol import ProtocolError, parse_request

    header = json.dumps({"inputs": [
        {"name": "n", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 11}}]}).encode()
    blobs = np.array([1.5, -2], dtype="<f4").tobytes() + struct.pack("<I", 2) + b"ok" + struct.pack("<I", 1) + b"!"
    request = parse_request(header + blobs, str(len(header)))
    assert request.inputs[0].data.tolist() == [1.5, -2.0] and request.inputs[1].data.tolist() == [b"ok", b"!"]
    with pytest.raises(ProtocolError, match="binary_data_size 11 exceeds the 10 bytes left"):
        parse_request(header + blobs[:-1], str(len(header)))
    with pytest.raises(ProtocolError, match="Inference-Header-Content-Length is 999"):
        parse_request(header + blobs, "999")
    with pytest.raises(ProtocolError, match="1 bytes of binary data no input claims"):
        parse_request(header + blobs + b"x", str(len(header)))


def test_metrics_count_requests_latency_rows_and_predicted_classes(adult):
    from prometheus_client.parser import text_string_to_metric_families

    model, rows = adult
    with Server(create_app(model, "adult")) as running:
        base = f"http://{running.url}"
        for size in (1, 4):
            requests.post(f"{base}/predict", json={"records": rows.head(size).to_dict("records")}, timeout=30)
        requests.post(f"{base}/predict", json={"rows": []}, timeout=30)
        scraped = requests.get(f"{base}/metrics", timeout=10)
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert samples[("deepwell_requests_total", (("route", "/predict"), ("status", "200")))] == 2
    assert samples[("deepwell_requests_total", (("route", "/predict"), ("status", "400")))] == 1
    assert samples[("deepwell_request_seconds_count", (("route", "/predict"),))] == 3
    assert samples[("deepwell_batch_rows_sum", ())] == 5 and samples[("deepwell_batch_rows_count", ())] == 2
    predicted = [str(v) for v in model.predict(rows.head(1))] + [str(v) for v in model.predict(rows.head(4))]
    for label in set(predicted):
        assert samples[("deepwell_predictions_total", (("label", label),))] == predicted.count(label)


def test_concurrent_requests_are_predicted_in_micro_batches_and_a_bad_one_fails_alone(adult):
    from concurrent.futures import ThreadPoolExecutor

    from prometheus_client.parser import text_string_to_metric_families

    model, rows = adult
    expected = [str(v) for v in model.predict(rows)]
    with Server(create_app(model, "adult", Limits(batch_wait_s=0.05))) as running:
        base = f"http://{running.url}"

        def one(i: int):
            record = {k: None if pd.isna(v) else v.item() if hasattr(v, "item") else v  # JSON null: missing
                      for k, v in rows.iloc[i].items()}
            if i == 7:
                record["age"] = "forty"  # not a number: this request alone fails
            return requests.post(f"{base}/predict", json={"records": [record]}, timeout=30)

        def calls() -> float:
            scraped = requests.get(f"{base}/metrics", timeout=10).text
            return next(s.value for f in text_string_to_metric_families(scraped) for s in f.samples
                        if s.name == "deepwell_batch_rows_count")

        with ThreadPoolExecutor(16) as pool:
            good = list(pool.map(one, [i for i in range(17) if i != 7]))
            assert calls() < 16  # sixteen requests shared model calls
            answers = list(pool.map(one, range(16)))
    for answer, i in zip(good, [i for i in range(17) if i != 7], strict=True):
        assert answer.status_code == 200 and [str(v) for v in answer.json()["predictions"]] == [expected[i]]
    assert answers[7].status_code == 400 and "age" in answers[7].json()["error"]
    for i, answer in enumerate(answers):
        if i != 7:
            assert answer.status_code == 200 and [str(v) for v in answer.json()["predictions"]] == [expected[i]]


def test_served_requests_are_logged_and_their_drift_shows_in_metrics_and_in_monitor(adult, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    model, _ = adult
    frame = pd.read_csv(model.run_dir / "predictions.csv")[model.input_columns]  # the test split
    moved = frame.assign(age=frame["age"] + 30).head(200)
    log = tmp_path / "requests.sqlite"
    with Server(create_app(model, "adult", monitoring=Monitoring(log=log, refresh_s=0.2))) as running:
        base = f"http://{running.url}"
        for start in range(0, len(moved), 20):
            records = json.loads(moved.iloc[start:start + 20].to_json(orient="records"))
            assert requests.post(f"{base}/predict", json={"records": records}, timeout=30).status_code == 200
        deadline = time.monotonic() + 20
        while True:
            scraped = requests.get(f"{base}/metrics", timeout=10).text
            samples = {(s.name, tuple(s.labels.values())): s.value
                       for family in text_string_to_metric_families(scraped) for s in family.samples}
            if samples.get(("deepwell_drift_rows", ())) == len(moved):
                break
            assert time.monotonic() < deadline, "the drift gauges were not refreshed"
            time.sleep(0.1)
    assert samples[("deepwell_drift_flagged", ("age",))] == 1 and samples[("deepwell_drift_psi", ("age",))] > 1
    assert samples[("deepwell_drift_flagged", ("workclass",))] == 0
    assert request_count(log) == (10, 200)
    result = subprocess.run([str(Path(sys.executable).with_name("deepwell")), "monitor", str(model.run_dir),
                             "--log", str(log), "--out", str(tmp_path / "drift")], capture_output=True, text=True,
                            env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr
    flagged = json.loads((tmp_path / "drift" / "drift.json").read_text())["flagged"]
    assert "age" in flagged and "workclass" not in flagged and "200 rows" in result.stdout.replace(",", "")


def test_the_request_log_stays_under_its_cap_by_dropping_the_oldest_rows(tmp_path):
    log = RequestLog(tmp_path / "log.sqlite", max_bytes=200_000)
    for i in range(300):
        log.append([(float(i), 0.001, [{"text": "x" * 900, "n": i}] * 5, [{"prediction": "a"}] * 5)])
    log.close()
    kept, outputs = read_log(tmp_path / "log.sqlite")
    assert (tmp_path / "log.sqlite").stat().st_size < 400_000 and 0 < len(kept) < 1500
    assert kept["n"].iloc[-1] == 299 and kept["n"].iloc[0] > 0  # the latest kept, the oldest dropped
    requests_left, rows_left = request_count(tmp_path / "log.sqlite")
    assert rows_left == len(kept) and requests_left == pytest.approx(rows_left / 5, abs=1)


def browser_page(p, problems: list[str]):
    import shutil

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Debian's chromium is needed for the playground tests (make test installs it).")
    browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return browser, page


def test_the_playground_page_asks_for_the_token_builds_the_form_and_shows_the_prediction(adult):
    from playwright.sync_api import sync_playwright

    from test_report import SCREENSHOTS

    model, rows = adult
    from deepwell.serving.schema import input_columns

    categories = {c.name: {str(v) for v in c.categories} for c in input_columns(model) if c.categories is not None}
    row = next(r for _, r in rows.iterrows() if all(str(r[c]) in known for c, known in categories.items()))
    expected = str(model.predict(pd.DataFrame([row]))[0])
    probabilities = model.predict_proba(pd.DataFrame([row]))[0]
    problems: list[str] = []
    SCREENSHOTS.mkdir(exist_ok=True)
    with Server(create_app(model, "adult", Limits(token=TOKEN))) as running, sync_playwright() as p:
        browser, page = browser_page(p, problems)
        page.goto(f"http://{running.url}/")
        page.wait_for_selector("#token-box", state="visible")  # the metadata call was refused: 401
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        page.wait_for_selector("#in-age")
        for column in model.input_columns:
            if column in categories:
                page.select_option(f"#in-{column}", str(row[column]))
            else:
                page.fill(f"#in-{column}", str(row[column]))
        page.click("#predict")
        page.wait_for_selector("#prediction")
        assert page.text_content("#prediction") == expected
        bars = page.eval_on_selector_all(".bar", "bars => bars.map(b => [b.dataset.class, "
                                                 "b.querySelector('.value').textContent])")
        shown = {name: float(value.split()[0]) for name, value in bars}
        assert shown == {str(c): pytest.approx(100 * p, abs=0.051)
                         for c, p in zip(model.classes_, probabilities, strict=True)}
        page.screenshot(path=str(SCREENSHOTS / "playground-adult.png"), full_page=True)
        browser.close()
    assert [m for m in problems if "401" not in m] == []  # only the refused call before the token, logged


def test_a_load_of_2000_requests_at_concurrency_32_has_no_5xx_and_the_offline_predictions(adult, server):
    """Routes mixed, with a malformed request every 50th: each answer checked against offline `predict`."""
    from concurrent.futures import ThreadPoolExecutor

    model, rows = adult
    expected = [str(v) for v in model.predict(rows)]
    records = json.loads(rows.to_json(orient="records"))
    local = threading.local()

    def one(i: int) -> tuple[int, int, str | None]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        session = local.session
        row = i % len(rows)
        if i % 50 == 49:
            answer = session.post(f"http://{server.url}/predict", data=b"{not json", timeout=60)
            return i, answer.status_code, None
        if i % 2:
            answer = session.post(f"http://{server.url}/predict", json={"records": [records[row]]}, timeout=60)
        else:
            split = {"columns": list(records[row]), "data": [list(records[row].values())]}
            answer = session.post(f"http://{server.url}/invocations", json={"dataframe_split": split}, timeout=60)
        return i, answer.status_code, str(answer.json()["predictions"][0]) if answer.ok else answer.text

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(2000)))
    assert not [a for a in answers if a[1] >= 500]
    assert {status for i, status, _ in answers if i % 50 == 49} == {400}
    wrong = [(i, status, got) for i, status, got in answers
             if i % 50 != 49 and (status, got) != (200, expected[i % len(rows)])]
    assert wrong == []


def test_a_threshold_mitigated_model_reads_its_sensitive_column_as_an_optional_input(tmp_path):
    """Trained with --mitigate threshold --exclude-sensitive: the group is no input of the network, yet the server
    takes it and applies the group thresholds, as Model.predict does; without it the network's own labels."""
    rng = np.random.default_rng(0)
    group = rng.choice(["a", "b"], 1500, p=[0.6, 0.4])
    skill = rng.normal(size=1500)
    proxy = skill + np.where(group == "a", 0.8, -0.8)  # the model sees the group through the proxy
    frame = pd.DataFrame({"group": group, "proxy": proxy,
                          "label": np.where(proxy + rng.normal(0, 0.5, 1500) > 0, "yes", "no")})
    model = dw.train(frame, "label", output=tmp_path, quiet=True, track=False, config={
        "training": {"epochs": 4}, "fairness": {"sensitive": ["group"], "mitigate": "threshold",
                                                "exclude_sensitive": True}})
    assert model.input_columns == ["proxy"] and model.thresholds is not None
    rows = frame.head(60)
    with Server(create_app(model, "hiring")) as running:
        client = httpclient.InferenceServerClient(running.url)
        assert [i["name"] for i in client.get_model_metadata("hiring")["inputs"]] == ["proxy", "group"]

        def labels(columns: list[str]) -> list[str]:
            tensors = []
            for name in columns:
                data = rows[name].to_numpy(np.float64) if name == "proxy" else \
                    np.array([g.encode() for g in rows[name]], dtype=np.object_)
                tensor = httpclient.InferInput(name, [len(rows)], "FP64" if name == "proxy" else "BYTES")
                tensor.set_data_from_numpy(data)
                tensors.append(tensor)
            return [v.decode() for v in client.infer("hiring", tensors).as_numpy("label")]

        with_group, without = labels(["proxy", "group"]), labels(["proxy"])
    assert with_group == list(model.predict(rows)) and without == list(model.predict(rows[["proxy"]]))
    assert with_group != without
