"""Training pairs for a causal LM: JSONL (`{"prompt", "completion"}` or chat `{"messages": [...]}`) or an
InstructLab taxonomy (qna.yaml files, validated by the `instructlab-schema` package).

An `Example` is a prompt and the completion the loss is taken on. Chat examples keep their messages, so the
tokenizer's chat template (when it has one) formats them (generation/tokens.py); the last message must be the
assistant's, and it is the completion.

InstructLab: a compositional skill's seed examples become pairs (its `context`, when given, goes before the
question); a knowledge file's seed examples become pairs grounded in their context, and the documents the file
names (`document.patterns`) are read from a local folder (`documents`) and added as plain text to learn
(completion only, empty prompt) — InstructLab's own knowledge training also trains on the documents. Nothing is
fetched from the `document.repo` URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepwell.errors import DataError

ROLES = ("system", "user", "assistant")
DOCUMENT_CHUNK = 1200  # characters of a knowledge document per training text (split at paragraph breaks)


@dataclass(frozen=True)
class Example:
    """One training pair: `completion` is what the model learns to write after `prompt`."""

    prompt: str
    completion: str
    messages: tuple[dict[str, str], ...] = ()  # a chat: all but the last (assistant) message
    origin: str = ""  # file:line (or file: seed example n) it came from

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completion": self.completion, "origin": self.origin,
                **({"messages": list(self.messages)} if self.messages else {})}


@dataclass
class Examples:
    """What a data path held: the pairs, and what kind of source it was (for the run's record)."""

    items: list[Example]
    source: str  # jsonl | chat | instructlab
    files: list[str] = field(default_factory=list)


def read_examples(path: str | Path, documents: str | Path | None = None) -> Examples:
    """Pairs from a JSONL file or an InstructLab taxonomy folder (or one qna.yaml)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected a JSONL file or an InstructLab taxonomy).")
    if path.is_dir() or path.name == "qna.yaml":
        return read_taxonomy(path, documents)
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise DataError(f"{path}: expected a .jsonl file of {{\"prompt\", \"completion\"}} or {{\"messages\"}} "
                        "lines, or an InstructLab taxonomy folder.")
    items = [_jsonl_example(line, f"{path}:{number}") for number, line in _lines(path) if line.strip()]
    if not items:
        raise DataError(f"{path}: no examples (every line is empty).")
    chat = any(item.messages for item in items)
    return Examples(items, "chat" if chat else "jsonl", [str(path)])


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as f:
            yield from enumerate(f, start=1)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}).") from None


def _jsonl_example(line: str, where: str) -> Example:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}.")
    if "messages" in record:
        return _chat_example(record["messages"], where)
    missing = [key for key in ("prompt", "completion") if key not in record]
    if missing:
        raise DataError(f"{where}: missing {' and '.join(repr(m) for m in missing)}; each line needs "
                        "{\"prompt\": ..., \"completion\": ...} or {\"messages\": [...]} "
                        f"(found keys {sorted(record)}).")
    for key in ("prompt", "completion"):
        if not isinstance(record[key], str):
            raise DataError(f"{where}: {key!r} must be a string, got {type(record[key]).__name__}.")
    if not record["completion"]:
        raise DataError(f"{where}: 'completion' is empty; there is nothing to learn from this line.")
    return Example(record["prompt"], record["completion"], origin=where)


def _chat_example(messages: Any, where: str) -> Example:
    if not isinstance(messages, list) or len(messages) < 2:
        raise DataError(f"{where}: 'messages' must be a list of at least two messages (a user's, then the "
                        "assistant's answer).")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or \
                not isinstance(message.get("content"), str):
            raise DataError(f"{where}: message {index} must be {{\"role\": one of {', '.join(ROLES)}, "
                            f"\"content\": text}}, got {json.dumps(message)[:120]}.")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's (it is the completion learned), "
                        f"not {messages[-1]['role']!r}.")
    context = tuple({"role": m["role"], "content": m["content"]} for m in messages[:-1])
    return Example(plain_prompt(context), messages[-1]["content"], context, where)


def plain_prompt(messages: tuple[dict[str, str], ...] | list[dict[str, str]]) -> str:
    """A chat as plain text, for a tokenizer without a chat template (and for showing it)."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


# --- InstructLab taxonomies ---------------------------------------------------------------------------------

def read_taxonomy(path: Path, documents: str | Path | None) -> Examples:
    files = sorted(path.rglob("qna.yaml")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no qna.yaml files in this folder (an InstructLab taxonomy holds "
                        "compositional_skills/…/qna.yaml and knowledge/…/qna.yaml).")
    items: list[Example] = []
    for file in files:
        contents = validated_qna(file)
        if "document" in contents:
            items += _knowledge(contents, file, Path(documents) if documents else None)
        else:
            items += _skill(contents, file)
    return Examples(items, "instructlab", [str(f) for f in files])


@contextmanager
def _collected(messages: list[str]) -> Iterator[None]:
    """instructlab-schema reports problems through its logger (TaxonomyMessageFormat.LOGGING): collect them."""
    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                messages.append(record.getMessage())

    logger = logging.getLogger("instructlab.schema.taxonomy")
    handler, propagate = Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def validated_qna(file: Path) -> dict[str, Any]:
    """A qna.yaml checked against InstructLab's JSON schema (the version the file names); errors name the file
    and the YAML path."""
    try:
        from instructlab.schema.taxonomy import TaxonomyParser, TaxonomyReadingException
    except ImportError:
        raise DataError("InstructLab taxonomies need instructlab-schema: pip install 'deepwell[llm]'.") from None
    parser = TaxonomyParser(schema_version=0, message_format="logging")
    parser.yq_available = False  # line numbers through the yq tool: not installed; the YAML path names the place
    messages: list[str] = []
    try:
        with _collected(messages):
            taxonomy = parser.parse(file)
    except TaxonomyReadingException as exc:
        raise DataError(f"{file}: not readable as an InstructLab qna.yaml ({exc.__cause__ or exc}).") from None
    if taxonomy.errors:
        shown = "; ".join(m.split(str(taxonomy.rel_path), 1)[-1].lstrip(":0123456789 ") for m in messages[:5])
        more = f" (and {len(messages) - 5} more)" if len(messages) > 5 else ""
        raise DataError(f"{file}: invalid InstructLab qna.yaml (schema version {taxonomy.version}): {shown}{more}.")
    return dict(taxonomy.contents)


def _skill(contents: dict[str, Any], file: Path) -> list[Example]:
    out = []
    for index, seed in enumerate(contents["seed_examples"], start=1):
        question = seed["question"].strip()
        prompt = f"{seed['context'].strip()}\n\n{question}" if seed.get("context") else question
        out.append(Example(prompt, seed["answer"].strip(), origin=f"{file}: seed example {index}"))
    return out


def _knowledge(contents: dict[str, Any], file: Path, documents: Path | None) -> list[Example]:
    out = []
    for index, seed in enumerate(contents["seed_examples"], start=1):
        for pair in seed["questions_and_answers"]:
            prompt = f"{seed['context'].strip()}\n\n{pair['question'].strip()}"
            out.append(Example(prompt, pair["answer"].strip(), origin=f"{file}: seed example {index}"))
    return out + [Example("", chunk, origin=f"{name}") for name, chunk in _documents(contents, file, documents)]


def _documents(contents: dict[str, Any], file: Path, documents: Path | None) -> list[tuple[str, str]]:
    patterns = contents["document"]["patterns"]
    if documents is None:
        raise DataError(f"{file}: a knowledge file whose documents ({', '.join(patterns)} in "
                        f"{contents['document']['repo']}) must be read from a local folder: pass documents= "
                        "(--documents DIR) with a checkout of that repository; nothing is downloaded.")
    found = sorted({p for pattern in patterns for p in documents.glob(pattern) if p.is_file()})
    if not found:
        raise DataError(f"{file}: no document in {documents} matches {', '.join(patterns)} "
                        "(the file's document.patterns).")
    chunks = []
    for document in found:
        text = document.read_text(encoding="utf-8", errors="replace")
        chunks += [(f"{document}: part {i}", chunk) for i, chunk in enumerate(_chunks(text), start=1)]
    return chunks


def _chunks(text: str) -> list[str]:
    """Paragraphs joined up to DOCUMENT_CHUNK characters."""
    out, current = [], ""
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        if current and len(current) + len(paragraph) > DOCUMENT_CHUNK:
            out.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    return out + ([current] if current else [])
