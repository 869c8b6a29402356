"""`Generator`: a causal LM (a base folder with a PEFT adapter, or fully fine-tuned weights) and its tokenizer —
what `dw.finetune` returns and `dw.load` gives back for a generator folder.

A generator folder (written whole beside its target and swapped in, like a model folder):
  generator.json             format, method, the base's identity (name, path, SHA-256 of its weights), settings
  adapter_model.safetensors  lora / prompt: PEFT's own adapter files (with adapter_config.json), so PEFT and
  adapter_config.json        other tools read them too; the base is referred to, not copied
  model.safetensors          full: every weight (with config.json; no base needed)
  tokenizer.json …           the tokenizer (and its chat template)
Nothing in it runs code: weights are safetensors, the rest JSON; loading checks the base's hash first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepwell.config import FineTune, FinetuneConfig, GenerationConfig
from deepwell.errors import ConfigError, ModelFileError
from deepwell.generation.data import plain_prompt
from deepwell.models import base_folder
from deepwell.runs.files import staged_folder, write_json

INFO = "generator.json"
FORMAT, FORMAT_VERSION = "deepwell-generator", 1


def _transformers():
    return base_folder.transformers_quietly("Causal language models")


def load_base(folder: Path) -> tuple[Any, Any]:
    """(model, tokenizer) of a causal-LM folder: safetensors weights only, no code from the folder."""
    transformers = _transformers()
    base_folder.check_weights(folder, "base model")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, use_safetensors=True, trust_remote_code=False)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{folder}: not a causal language model folder transformers can read without running "
                          f"code ({type(exc).__name__}: {str(exc)[:300]}).") from None
    if tokenizer.pad_token_id is None:  # GPT-2 style tokenizers have none: pad with end-of-text (masked out)
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def with_adapter(model, config: FinetuneConfig, base: Path):
    """The base wrapped in the configured PEFT adapter (base weights frozen), or itself for full fine-tuning."""
    if config.method is FineTune.FULL:
        return model
    import peft

    from deepwell.models.pretrained import lora_targets, quiet_peft

    if config.method is FineTune.LORA:
        o = config.lora
        adapter = peft.LoraConfig(task_type=peft.TaskType.CAUSAL_LM, r=o.rank, lora_alpha=o.alpha,
                                  lora_dropout=o.dropout, bias="none",
                                  target_modules=o.target_modules or lora_targets(model.config.model_type))
    else:
        o = config.prompt_tuning
        adapter = peft.PromptTuningConfig(
            task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=o.virtual_tokens,
            prompt_tuning_init=peft.PromptTuningInit.TEXT if o.init_text else peft.PromptTuningInit.RANDOM,
            prompt_tuning_init_text=o.init_text, tokenizer_name_or_path=str(base) if o.init_text else None)
    with quiet_peft():
        return peft.get_peft_model(model, adapter)


@dataclass
class Usage:
    """What one generation cost and why it ended (`stop`: end of text; `length`: max_tokens, or a time limit)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "length"


@dataclass
class Generator:
    """A causal LM ready to generate: `generate`, `stream`, `chat`; `save` and `merge` write folders."""

    model: Any
    tokenizer: Any
    info: dict[str, Any]
    path: Path | None = None

    @property
    def method(self) -> FineTune:
        return FineTune(self.info["method"])

    @property
    def defaults(self) -> GenerationConfig:
        return GenerationConfig.model_validate(self.info.get("generation", {}))

    def prompt_text(self, prompt: str | None = None, messages: list[dict[str, str]] | None = None) -> str:
        """The text the model continues: a plain prompt as it is; a chat through the tokenizer's chat template
        (or `Role: content` lines without one) — as training formatted it."""
        if messages is None:
            return prompt or ""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return plain_prompt(messages)

    def settings(self, **overrides: Any) -> GenerationConfig:
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return GenerationConfig.model_validate({**self.defaults.model_dump(), **given})
        except ValueError as exc:
            raise ConfigError(f"generation settings: {exc}") from None

    def generate(self, prompt: str | None = None, *, messages: list[dict[str, str]] | None = None,
                 max_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
                 seed: int | None = None) -> str:
        """The completion of `prompt` (or of a chat's `messages`): greedy at temperature 0, else sampled with
        top-p; the same seed gives the same text."""
        return "".join(self.stream(prompt, messages=messages, max_tokens=max_tokens, temperature=temperature,
                                   top_p=top_p, seed=seed))

    def stream(self, prompt: str | None = None, *, messages: list[dict[str, str]] | None = None,
               max_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
               seed: int | None = None, stop: threading.Event | None = None,
               usage: Usage | None = None) -> Iterator[str]:
        """The completion piece by piece as it is generated (decoded text, never a split character). `stop` ends
        it early; `usage` is filled with the token counts and the finish reason."""
        settings = self.settings(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
        ids = self.encode(self.prompt_text(prompt, messages))
        usage = usage if usage is not None else Usage()
        usage.prompt_tokens = int(ids.shape[1])
        tokens = sample(self.model, ids, settings, self.tokenizer.eos_token_id, stop, usage)
        yield from decode_stream(self.tokenizer, tokens)

    def encode(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = int(self.info.get("max_length", 512))
        return torch.tensor([ids[-room:] if ids else [self.tokenizer.eos_token_id]], dtype=torch.long)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def save(self, path: str | Path) -> Path:
        return save_generator(Path(path), self.model, self.tokenizer, self.info)

    def merge(self, path: str | Path) -> Path:
        """A plain Hugging Face model folder with a LoRA adapter folded into the base weights (no PEFT needed
        to use it). Prompt tuning has nothing to fold: its virtual tokens stay an adapter."""
        if self.method is FineTune.PROMPT:
            raise ConfigError("A prompt-tuned model cannot be merged: its virtual tokens are inputs, not weight "
                              "changes. Serve the adapter folder as it is.")
        import copy

        model = self.model
        if self.method is FineTune.LORA:
            model = copy.deepcopy(model).merge_and_unload()
        path = Path(path)
        with staged_folder(path) as staging:
            model.save_pretrained(staging, safe_serialization=True)
            self.tokenizer.save_pretrained(staging)
        return path


@torch.inference_mode()
def sample(model, ids: torch.Tensor, settings: GenerationConfig, eos: int | None,
           stop: threading.Event | None = None, usage: Usage | None = None) -> Iterator[int]:
    """Token ids one by one with the key/value cache: greedy or temperature + top-p from a seeded generator."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu")
    generator.manual_seed(settings.seed if settings.seed is not None else torch.seed() % (2 ** 63))
    runner, inputs = first_inputs(model, ids.to(device))
    attention = torch.ones(inputs["attention_mask"].shape, dtype=torch.long, device=device)
    cache_name = _cache_argument(model)
    past = None
    for _ in range(settings.max_tokens):
        if stop is not None and stop.is_set():
            return
        out = runner(**{**inputs, "attention_mask": attention, cache_name: past}, use_cache=True)
        past = getattr(out, cache_name)
        logits = out.logits[0, -1].float().cpu()
        token = next_token(logits, settings, generator)
        if token == eos:
            if usage is not None:
                usage.finish_reason = "stop"
            return
        if usage is not None:
            usage.completion_tokens += 1
        yield token
        inputs = {"input_ids": torch.tensor([[token]], device=device), "attention_mask": None}
        attention = torch.cat([attention, torch.ones((1, 1), dtype=attention.dtype, device=device)], dim=1)


def _cache_argument(model) -> str:
    """What the installed transformers calls the key/value cache: `cache` (5.x) or `past_key_values` (4.x)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def first_inputs(model, ids: torch.Tensor) -> tuple[Any, dict[str, torch.Tensor]]:
    """What runs the first step and its inputs. A prompt-tuned model's virtual tokens go in front once, as
    embeddings into the base model; later steps feed the base one token at a time with the cache (PEFT's own
    forward would put them in front of every step)."""
    if getattr(getattr(model, "active_peft_config", None), "peft_type", None) == "PROMPT_TUNING":
        base = model.get_base_model()
        embeddings = base.get_input_embeddings()(ids)
        prompts = model.get_prompt(batch_size=ids.shape[0]).to(embeddings.dtype)
        embeds = torch.cat([prompts, embeddings], dim=1)
        return base, {"inputs_embeds": embeds, "attention_mask": torch.ones(embeds.shape[:2], device=ids.device)}
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def next_token(logits: torch.Tensor, settings: GenerationConfig, generator: torch.Generator) -> int:
    if settings.temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / settings.temperature, dim=-1)
    if settings.top_p < 1:
        ordered, order = probs.sort(descending=True)
        keep = ordered.cumsum(0) - ordered < settings.top_p  # the smallest prefix reaching top_p (never empty)
        probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))


def decode_stream(tokenizer, tokens: Iterator[int]) -> Iterator[str]:
    """Text pieces as tokens arrive; a piece is held back while it ends in a partial UTF-8 character."""
    ids: list[int] = []
    shown = ""
    for token in tokens:
        ids.append(token)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue
        if len(text) > len(shown):
            yield text[len(shown):]
        shown = text


def save_generator(path: Path, model, tokenizer, info: dict[str, Any]) -> Path:
    """Write a generator folder (atomic: staged beside the target, then swapped in)."""
    import warnings

    with staged_folder(path) as staging:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PEFT warns when it cannot check the base's config online
            model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        write_json(staging / INFO, {"format": FORMAT, "format_version": FORMAT_VERSION, **info})
    return path


def is_generator(path: str | Path) -> bool:
    path = Path(path)
    return (path / INFO).is_file() or (path / "model" / INFO).is_file()


def load_generator(path: str | Path, device: str = "cpu") -> Generator:
    """A generator folder (or a run folder holding one in model/): the base found by its hash, the adapter on it."""
    path = Path(path)
    folder = path / "model" if (path / "model" / INFO).is_file() else path
    try:
        info = json.loads((folder / INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{folder / INFO}: missing or damaged ({exc}).") from None
    if info.get("format") != FORMAT or int(info.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{folder / INFO}: not a generator description this deepwell reads.")
    method = FineTune(info["method"])
    if method is FineTune.FULL:
        model, tokenizer = load_base(folder)
    else:
        import peft

        base = base_folder.locate(info["base"], folder)
        model, _ = load_base(base)
        tokenizer = _transformers().AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if not (folder / "adapter_model.safetensors").is_file():
            raise ModelFileError(f"{folder}: adapter_model.safetensors is missing.")
        from deepwell.models.pretrained import quiet_peft

        with quiet_peft():
            model = peft.PeftModel.from_pretrained(model, folder, is_trainable=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    from deepwell.inference.network import resolve_device

    model.to(resolve_device(device)).eval()
    return Generator(model, tokenizer, info, folder)
