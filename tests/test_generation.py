"""Causal language models: a tiny GPT-2 built from a config (nothing downloaded) fine-tuned with LoRA and prompt
tuning on JSONL and an InstructLab taxonomy, reloaded, merged, and served to the openai client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import deepwell as dw
from deepwell.sample_data import fact_examples, write_tiny_causal_lm

pytest.importorskip("peft")
pytest.importorskip("transformers")

SETTINGS = {"validation_fraction": 0.25, "batch_size": 8, "lora": {"rank": 8, "target_modules": ["c_attn", "c_fc"]}}
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("facts") / "facts.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in fact_examples()))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    texts = [e["prompt"] + e["completion"] for e in fact_examples()]
    texts += ["Add the numbers 2 and 3. The answer is 5.", "Colours of the flag: red, white and blue.",
              "<|user|>hello\n<|assistant|>hi there\n"]
    return write_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "base", texts)


@pytest.fixture(scope="module")
def lora_run(base, facts, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    generator = dw.finetune(base, facts, method="lora", config=SETTINGS, epochs=3, learning_rate=1e-2, seed=0,
                            output=runs, quiet=True, track=False)
    return generator, generator.path.parent


def test_lora_learns_saves_only_the_adapter_and_reloads_to_the_same_text(lora_run, base):
    generator, run = lora_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["after"]["loss"] < metrics["before"]["loss"] - 0.3  # held-out loss falls
    assert metrics["before"]["answered"] == 26 and metrics["after"]["exact_match"] is not None
    assert 0 < metrics["trainable_parameters"] < metrics["parameters"] * 0.3
    folder = run / "model"
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "adapter_config.json").is_file()
    assert not (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    info = json.loads((folder / "generator.json").read_text())
    assert info["method"] == "lora" and info["base"]["path"] == str(base.resolve())
    assert len(info["base"]["sha256"]) == 64
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,lr,train_loss,val_loss") and len(history) >= 3  # epoch 0 is the base
    diagnosis = json.loads((run / "diagnosis.json").read_text())
    assert diagnosis["verdict"] in {"good fit", "not converged", "overfit", "underfit"}
    assert diagnosis["evidence"]["held_out_loss_before"] == pytest.approx(metrics["before"]["loss"], abs=1e-3)
    report = (run / "report.html").read_text()
    assert "Held-out evaluation before and after" in report and "Sample generations" in report
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    prompt = "Q: What colour does Ada like?\nA:"
    loaded = dw.load(run)
    assert isinstance(loaded, dw.Generator)
    for settings in ({"temperature": 0.0}, {"temperature": 0.9, "top_p": 0.9, "seed": 7}):
        assert loaded.generate(prompt, max_tokens=8, **settings) == generator.generate(prompt, max_tokens=8, **settings)
    sampled = {loaded.generate(prompt, max_tokens=8, temperature=1.5, seed=s) for s in range(6)}
    assert len(sampled) > 1  # the seed matters when sampling


def test_merge_folds_the_adapter_into_a_plain_model(lora_run, tmp_path):
    import transformers

    generator, _ = lora_run
    merged = generator.merge(tmp_path / "merged")
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    plain = transformers.AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True)
    alone = dw.Generator(plain, generator.tokenizer, {**generator.info, "method": "full"})
    prompt = "Q: Which colour is Ben's favourite?\nA:"
    assert alone.generate(prompt, max_tokens=6) == generator.generate(prompt, max_tokens=6)


def write_taxonomy(root: Path) -> tuple[Path, Path]:
    skill = root / "taxonomy" / "compositional_skills" / "colours" / "qna.yaml"
    skill.parent.mkdir(parents=True)
    seeds = "".join(f"  - question: {e['prompt'][3:-3]!r}\n    answer: {e['completion'].strip()!r}\n"
                    for e in fact_examples()[:24])
    skill.write_text(f"version: 3\ncreated_by: tester\ntask_description: Favourite colours\nseed_examples:\n{seeds}")
    knowledge = root / "taxonomy" / "knowledge" / "flags" / "qna.yaml"
    knowledge.parent.mkdir(parents=True)
    pairs = "".join(f"      - question: Which colour is number {i} on the flag?\n        answer: colour {i}\n"
                    for i in range(3))
    examples = "".join(f"  - context: The flag has colours, part {n}.\n    questions_and_answers:\n{pairs}"
                       for n in range(5))
    knowledge.write_text("version: 3\ncreated_by: tester\ndomain: flags\ndocument_outline: Flags and colours\n"
                         f"seed_examples:\n{examples}document:\n  repo: https://example.org/flags.git\n"
                         "  commit: abc123\n  patterns:\n    - flags/*.md\n")
    documents = root / "documents"
    (documents / "flags").mkdir(parents=True)
    (documents / "flags" / "flag.md").write_text("# Flags\n\nThe flag is red, white and blue.\n\nIt has stars.\n")
    return root / "taxonomy", documents


def test_prompt_tuning_on_an_instructlab_taxonomy(base, tmp_path):
    taxonomy, documents = write_taxonomy(tmp_path)
    with pytest.raises(dw.DataError, match=r"knowledge/flags/qna.yaml: a knowledge file whose documents .*--documents"):
        dw.finetune(base, taxonomy, method="prompt", output=tmp_path / "runs", quiet=True, track=False)
    config = {**SETTINGS, "prompt_tuning": {"virtual_tokens": 4, "init_text": "Favourite colours"}}
    generator = dw.finetune(base, taxonomy, method="prompt", config=config, documents=documents, epochs=2,
                            seed=0, output=tmp_path / "runs", quiet=True, track=False)
    run = generator.path.parent
    info = json.loads((run / "run.json").read_text())
    assert info["source"] == "instructlab" and len(info["files"]) == 2
    assert info["examples"]["train"] + info["examples"]["held_out"] == 24 + 15 + 1  # skills, knowledge, document
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["after"]["loss"] < metrics["before"]["loss"]
    assert metrics["trainable_parameters"] == 4 * 64  # four virtual tokens of width 64
    prompt = "Q: What colour does Cleo like?\nA:"
    assert dw.load(run).generate(prompt, max_tokens=6, temperature=0.7, seed=3) == \
        generator.generate(prompt, max_tokens=6, temperature=0.7, seed=3)
    with pytest.raises(dw.ConfigError, match="prompt-tuned model cannot be merged"):
        generator.merge(tmp_path / "merged")


def test_chat_examples_go_through_the_tokenizers_chat_template(base, tmp_path):
    import shutil

    chatty = tmp_path / "chatty"
    shutil.copytree(base, chatty)
    config = json.loads((chatty / "tokenizer_config.json").read_text())
    (chatty / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHAT_TEMPLATE}))
    lines = [{"messages": [{"role": "user", "content": e["prompt"][3:-3]},
                           {"role": "assistant", "content": e["completion"].strip()}]} for e in fact_examples()]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    generator = dw.finetune(chatty, data, method="lora", config=SETTINGS, epochs=1, learning_rate=1e-2,
                            output=tmp_path / "runs", quiet=True, track=False)
    messages = [{"role": "user", "content": "What colour does Ada like?"}]
    assert generator.prompt_text(messages=messages) == "<|user|>What colour does Ada like?\n<|assistant|>"
    assert json.loads((generator.path.parent / "run.json").read_text())["source"] == "chat"
    assert isinstance(generator.generate(messages=messages, max_tokens=4), str)


@pytest.mark.parametrize(("line", "message"), [
    ('{"prompt": "Q: hi"}', r"bad.jsonl:2: missing 'completion'; each line needs"),
    ('{"prompt": "Q", "completion": 3}', r"bad.jsonl:2: 'completion' must be a string"),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}',
     r"bad.jsonl:2: the last message must be the assistant's"),
    ("not json", r"bad.jsonl:2: not valid JSON"),
])
def test_a_bad_jsonl_line_is_named(base, tmp_path, line, message):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "Q: a", "completion": " b"}\n' + line + "\n")
    with pytest.raises(dw.DataError, match=message):
        dw.finetune(base, data, output=tmp_path / "runs", quiet=True, track=False)
    assert not (tmp_path / "runs").exists()  # refused before any run folder is made


def test_a_malformed_qna_yaml_names_the_file_and_the_field(base, tmp_path):
    taxonomy, _ = write_taxonomy(tmp_path)
    skill = taxonomy / "compositional_skills" / "colours" / "qna.yaml"
    skill.write_text(skill.read_text().replace("task_description:", "task_descripton:"))
    with pytest.raises(dw.DataError, match=r"colours/qna.yaml: invalid InstructLab qna.yaml \(schema version 3\): "
                                           r".*'task_description' is a required property"):
        dw.finetune(base, taxonomy, output=tmp_path / "runs", quiet=True, track=False)


def test_base_folders_without_safetensors_weights_are_refused(facts, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(dw.ConfigError, match=r"empty: base model folder without model.safetensors; deepwell"):
        dw.finetune(empty, facts, output=tmp_path / "runs", quiet=True, track=False)
    (empty / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(dw.ConfigError, match=r"\(it has pytorch_model.bin: pickle files"):
        dw.finetune(empty, facts, output=tmp_path / "runs", quiet=True, track=False)


def test_a_moved_base_is_a_clear_error(base, facts, tmp_path):
    import shutil

    copy = tmp_path / "base-copy"
    shutil.copytree(base, copy)
    generator = dw.finetune(copy, facts, config=SETTINGS, epochs=1, output=tmp_path / "runs", quiet=True, track=False)
    shutil.rmtree(copy)
    with pytest.raises(dw.ModelFileError, match=r"adapter for the base model .*base-copy.* Put that base folder back"):
        dw.load(generator.path)


def test_cli_finetune_and_generate(base, facts, tmp_path):
    from typer.testing import CliRunner

    from deepwell.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["finetune", str(base), str(facts), "--method", "lora", "--epochs", "1",
                                 "--learning-rate", "0.01", "-o", str(tmp_path), "--name", "cli", "--quiet",
                                 "--no-track", "--merge"])
    assert result.exit_code == 0, result.output
    assert "held-out evaluation" in result.output and "perplexity" in result.output
    assert (tmp_path / "cli" / "merged" / "model.safetensors").is_file()
    result = runner.invoke(app, ["generate", str(tmp_path / "cli"), "Q: What colour does Ada like?\nA:",
                                 "--max-tokens", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    expected = dw.load(tmp_path / "cli").generate("Q: What colour does Ada like?\nA:", max_tokens=4, seed=1)
    assert result.output == expected + "\n"


@pytest.fixture(scope="module")
def served(lora_run):
    from conftest import Server
    from deepwell.serving.app import Limits
    from deepwell.serving.generation import GenerationLimits, create_generation_app

    generator, _ = lora_run
    app = create_generation_app(generator, "facts", Limits(token="s3cret"), GenerationLimits(max_tokens=32))
    with Server(app) as server:
        yield server, generator


def test_the_openai_client_completes_chats_and_streams(served):
    openai = pytest.importorskip("openai")
    server, generator = served
    client = openai.OpenAI(base_url=f"http://{server.url}/v1", api_key="s3cret", max_retries=0)
    prompt = "Q: What colour does Ada like?\nA:"
    expected = generator.generate(prompt, max_tokens=6, temperature=0.8, seed=5)
    done = client.completions.create(model="facts", prompt=prompt, max_tokens=6, temperature=0.8, seed=5)
    assert done.choices[0].text == expected and done.usage.completion_tokens <= 6
    assert done.usage.prompt_tokens == generator.count_tokens(prompt)
    pieces = list(client.completions.create(model="facts", prompt=prompt, max_tokens=6, temperature=0.8, seed=5,
                                            stream=True))
    assert "".join(p.choices[0].text for p in pieces) == expected
    assert pieces[-1].choices[0].finish_reason in ("stop", "length")
    messages = [{"role": "user", "content": "What colour does Ada like?"}]
    reply = client.chat.completions.create(model="facts", messages=messages, max_tokens=5)
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == generator.generate(messages=messages, max_tokens=5)
    streamed = client.chat.completions.create(model="facts", messages=messages, max_tokens=5, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == reply.choices[0].message.content
    assert [m.id for m in client.models.list()] == ["facts"]
    with pytest.raises(openai.BadRequestError, match="max_tokens 100 is above this server's limit of 32"):
        client.completions.create(model="facts", prompt=prompt, max_tokens=100)
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-4'"):
        client.chat.completions.create(model="gpt-4", messages=messages)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"http://{server.url}/v1", api_key="wrong", max_retries=0).models.list()


def test_the_open_inference_protocol_generate_extension(served):
    import requests

    server, generator = served
    headers = {"Authorization": "Bearer s3cret"}
    url = f"http://{server.url}/v2/models/facts"
    body = {"text_input": "Q: Which colour is Ben's favourite?\nA:", "parameters": {"max_tokens": 6}}
    answer = requests.post(f"{url}/generate", json=body, headers=headers, timeout=30).json()
    assert answer == {"model_name": "facts", "model_version": "1",
                      "text_output": generator.generate(body["text_input"], max_tokens=6)}
    with requests.post(f"{url}/generate_stream", json=body, headers=headers, stream=True, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines(decode_unicode=True)
                  if line.startswith("data: ")]
    assert "".join(e["text_output"] for e in events) == answer["text_output"]
    assert requests.get(f"http://{server.url}/v2/health/ready", timeout=5).status_code == 200  # no token needed
    refused = requests.post(f"{url}/generate", json={"parameters": {}}, headers=headers, timeout=5)
    assert refused.status_code == 400 and "text_input: Field required" in refused.json()["error"]


def test_packing_accumulation_and_checkpointing_train_and_the_memory_estimate_is_printed(base, facts, tmp_path,
                                                                                          capsys):
    config = {**SETTINGS, "batching": "pack", "max_length": 64, "gradient_accumulation": 2,
              "gradient_checkpointing": True, "batch_size": 4}
    generator = dw.finetune(base, facts, method="lora", config=config, epochs=2, learning_rate=1e-2,
                            output=tmp_path, track=False)
    err = capsys.readouterr().err
    assert "memory estimate on cpu:" in err and "parameters learn" in err and "epoch 2/2" in err
    metrics = json.loads((generator.path.parent / "metrics.json").read_text())
    assert metrics["after"]["loss"] < metrics["before"]["loss"]


def test_a_busy_server_answers_429_and_a_slow_generation_stops_at_the_time_limit(lora_run):
    import asyncio

    from deepwell.generation.model import Usage
    from deepwell.serving.app import ClientError
    from deepwell.serving.generation import GenerationLimits, Scheduler

    generator, _ = lora_run

    class Connected:
        async def is_disconnected(self) -> bool:
            return False

    async def scenario():
        scheduler = Scheduler(generator, GenerationLimits(concurrency=1, queue_s=0.05, timeout_s=0.0))
        settings = {"max_tokens": 200, "temperature": 1.0, "top_p": None, "seed": 1}
        usage = Usage()
        first = scheduler.stream(Connected(), "Q: hi\nA:", None, settings, usage)
        await anext(first)  # holds the only slot
        with pytest.raises(ClientError, match="the server is busy"):
            await scheduler.complete(Connected(), "Q: hi\nA:", None, settings)
        rest = [piece async for piece in first]
        return usage, rest

    usage, rest = asyncio.run(scenario())
    assert usage.finish_reason == "length" and usage.completion_tokens < 200  # stopped by the 0 s time limit


def test_deepwell_serve_starts_a_generator_from_the_command_line(lora_run):
    import subprocess
    import sys

    import requests

    from conftest import free_port, wait_until_ready

    _, run = lora_run
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "deepwell.cli.main", "serve", str(run), "--port", str(port),
                                "--name", "facts", "--threads", "1", "--max-tokens", "8"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}", 60)
        answer = requests.post(f"http://127.0.0.1:{port}/v1/completions", timeout=30,
                               json={"model": "facts", "prompt": "Q: What colour does Ada like?\nA:", "max_tokens": 4})
        assert answer.status_code == 200 and answer.json()["object"] == "text_completion"
        too_many = requests.post(f"http://127.0.0.1:{port}/v1/completions", timeout=30,
                                 json={"prompt": "Q:", "max_tokens": 9})
        assert too_many.status_code == 400 and "limit of 8" in too_many.json()["error"]["message"]
    finally:
        process.terminate()
        process.wait(10)


def test_a_finetuning_run_is_tracked_in_mlflow(base, facts, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    generator = dw.finetune(base, facts, method="lora", config=SETTINGS, epochs=2, learning_rate=1e-2,
                            output=tmp_path / "runs", quiet=True, track=True, tracking_uri=uri)
    info = json.loads((generator.path.parent / "run.json").read_text())
    client = mlflow.MlflowClient(uri)
    run = client.get_run(info["tracking"]["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["kind"] == "generation"
    assert run.data.metrics["after_loss"] < run.data.metrics["before_loss"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
    assert run.data.params["method"] == "lora" and "diagnosis" in run.data.tags
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/adapter_model.safetensors" in artifacts and "model/generator.json" in artifacts


def test_deepwell_info_describes_a_generator(lora_run):
    from typer.testing import CliRunner

    from deepwell.cli.main import app

    _, run = lora_run
    result = CliRunner().invoke(app, ["info", str(run)])
    assert result.exit_code == 0, result.output
    assert "lora fine-tuning of a gpt2 model" in result.output and "SHA-256" in result.output
    adapter = sum(p.numel() for n, p in dw.load(run).model.named_parameters() if "lora_" in n)
    assert f"{adapter:,} parameters of its own" in " ".join(result.output.split())


def test_deepwell_compare_reads_fine_tuning_runs(lora_run):
    from deepwell.tracking.runs import run_summary

    _, run = lora_run
    label, params, metrics = run_summary(str(run))
    assert label == run.name and params["method"] == "lora"
    assert metrics["after_loss"] < metrics["before_loss"] and "after_exact_match" in metrics


@pytest.mark.parametrize("mode", ["pad", "pack"])
def test_batch_count_is_the_number_of_batches_an_epoch_makes(mode):
    import random

    from deepwell.generation.tokens import IGNORE, Encoded, batch_count, batches

    rng = random.Random(0)
    encoded = [Encoded(list(range(1, n + 1)), [IGNORE] + list(range(2, n + 1)), f"line {i}")
               for i, n in enumerate(rng.randint(2, 40) for _ in range(1100))]
    made = list(batches(encoded, 8, mode, 0, 64, seed=3))
    assert batch_count(encoded, 8, mode, 64) == len(made)
    if mode == "pad":  # every example once, padded only to its batch's longest
        assert sum(int(b["attention_mask"].sum()) for b in made) == sum(len(e.ids) for e in encoded)
    else:
        assert all(b["input_ids"].shape[1] == 64 for b in made)
