"""`deepwell-edge predict MODEL_DIR DATA [-o OUT]`: the full package's `deepwell predict` for an exported model,
with the standard library's argparse (the edge runtime carries no CLI framework). DATA is a CSV/TSV/JSONL table
or, for a model whose one input is an image or audio column, a folder of such files."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from deepwell.edge.values import EdgeError, Table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepwell-edge", description="Run a model exported by `deepwell export`.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="Add prediction (and class probability) columns to DATA.")
    predict.add_argument("model", type=Path, help="The folder `deepwell export` wrote.")
    predict.add_argument("data", type=Path, help="CSV/TSV/JSONL table, or a folder of image or audio files.")
    predict.add_argument("-o", "--output", type=Path, help="CSV or JSONL file (default: CSV to stdout).")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rows = _predict(args.model, args.data, args.output)
        except EdgeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for warning in caught:
        print(f"note: {warning.message}", file=sys.stderr)
    if args.output is not None:
        print(f"wrote {rows} predictions to {args.output}", file=sys.stderr)
    return 0


def _predict(folder: Path, data: Path, output: Path | None) -> int:
    from deepwell.edge.model import load
    from deepwell.edge.values import read

    model = load(folder)
    table = _files(model, data) if data.is_dir() else read(data)
    records = [{**{name: table.columns[name][i] for name in table.columns}, **out}
               for i, out in enumerate(model.predict(table).records())]
    _write(records, output)
    return len(records)


def _files(model: Any, folder: Path) -> Table:
    files = [c for c in model.columns if c.reads_files]
    if len(files) != 1 or len(model.columns) != 1:
        raise EdgeError(f"{folder}: a folder can be predicted only by a model whose single input is an image or "
                        f"audio column; this model needs {', '.join(map(repr, model.input_columns))}.")
    paths = sorted(str(p) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise EdgeError(f"{folder}: the folder holds no files to predict.")
    return Table({files[0].name: paths}, len(paths), str(folder))


def _write(records: list[dict[str, Any]], output: Path | None) -> None:
    if output is not None and output.suffix.lower() in (".jsonl", ".ndjson"):
        output.write_text("".join(json.dumps(r, default=str) + "\n" for r in records), encoding="utf-8")
        return
    names = list(dict.fromkeys(k for r in records for k in r))
    stream = sys.stdout if output is None else output.open("w", newline="", encoding="utf-8")
    try:
        writer = csv.DictWriter(stream, fieldnames=names)
        writer.writeheader()
        writer.writerows(records)
    finally:
        if output is not None:
            stream.close()


if __name__ == "__main__":
    sys.exit(main())
