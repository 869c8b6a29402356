"""The Open Inference Protocol (KServe V2) over REST: tensors in and out, as JSON or with the binary tensor data
extension that tritonclient uses by default (a JSON header of `Inference-Header-Content-Length` bytes, then each
tensor's raw bytes in order; a BYTES element is a 4-byte little-endian length and its bytes).

Pure functions on bytes and arrays, so they are tested without a server. A malformed request raises
`ProtocolError`, which names the tensor or field and what was expected; the server answers it with 400.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
NUMERIC = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
           "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
           "FP32": np.float32, "FP64": np.float64}
DATATYPES = (*NUMERIC, "BYTES")


class ProtocolError(ValueError):
    """A request that does not follow the protocol (400)."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray  # flat, in row-major order; BYTES: an object array of bytes (binary) or str (JSON)
    parameters: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> int:
        return self.shape[0] if self.shape else 1


@dataclass
class InferRequest:
    inputs: list[Tensor]
    id: str | None = None
    outputs: list[str] | None = None  # names asked for; None: all
    binary_outputs: set[str] = field(default_factory=set)  # outputs to send as binary data
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """An inference request from the HTTP body (JSON, or JSON + binary tensors)."""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 < size <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} is {size}, but the body has {len(body)} bytes")
        header, binary = body[:size], memoryview(body)[size:]
    else:
        header, binary = body, memoryview(b"")
    try:
        message = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("inputs"), list) or not message["inputs"]:
        raise ProtocolError('the request needs "inputs": a non-empty list of tensors')
    parameters = _object(message.get("parameters"), "parameters")
    inputs, offset = [], 0
    for i, raw in enumerate(message["inputs"]):
        tensor, used = _input(raw, i, binary[offset:])
        inputs.append(tensor)
        offset += used
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary) - offset} bytes of binary data no input claims")
    outputs, binary_outputs = _requested(message.get("outputs"), bool(parameters.get("binary_data_output")))
    request_id = message.get("id")
    return InferRequest(inputs, None if request_id is None else str(request_id), outputs, binary_outputs, parameters)


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f'"{where}" must be an object, got {type(value).__name__}')
    return value


def _input(raw: Any, index: int, binary: memoryview) -> tuple[Tensor, int]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ProtocolError(f'input {index} must be an object with a "name"')
    name = raw["name"]
    datatype, shape = raw.get("datatype"), raw.get("shape")
    if datatype not in DATATYPES:
        raise ProtocolError(f'input {name!r}: "datatype" must be one of {", ".join(DATATYPES)}, got {datatype!r}')
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f'input {name!r}: "shape" must be a list of non-negative integers, got {shape!r}')
    parameters = _object(raw.get("parameters"), f"input {name!r} parameters")
    count = int(np.prod(shape)) if shape else 1
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or size > len(binary):
            raise ProtocolError(f"input {name!r}: binary_data_size {size!r} exceeds the {len(binary)} bytes left")
        data = _from_binary(bytes(binary[:size]), datatype, count, name)
        return Tensor(name, datatype, shape, data, parameters), size
    if "data" not in raw:
        raise ProtocolError(f'input {name!r} has neither "data" nor binary data')
    return Tensor(name, datatype, shape, _from_json(raw["data"], datatype, count, name), parameters), 0


def _from_json(data: Any, datatype: str, count: int, name: str) -> np.ndarray:
    flat = np.asarray(data, dtype=object).ravel() if isinstance(data, list) else np.asarray([data], dtype=object)
    if len(flat) != count:
        raise ProtocolError(f"input {name!r}: its shape holds {count} element(s), its data {len(flat)}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise ProtocolError(f"input {name!r}: BYTES data in JSON must be strings")
        return flat
    try:
        return flat.astype(NUMERIC[datatype])
    except (TypeError, ValueError):
        raise ProtocolError(f"input {name!r}: data must be numbers for datatype {datatype}") from None


def _from_binary(raw: bytes, datatype: str, count: int, name: str) -> np.ndarray:
    if datatype != "BYTES":
        dtype = np.dtype(NUMERIC[datatype]).newbyteorder("<")
        if len(raw) != count * dtype.itemsize:
            raise ProtocolError(f"input {name!r}: {count} {datatype} element(s) need {count * dtype.itemsize} "
                                f"bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype=dtype).astype(NUMERIC[datatype])
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ProtocolError(f"input {name!r}: a BYTES element's 4-byte length is cut off")
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            raise ProtocolError(f"input {name!r}: a BYTES element says {length} bytes, fewer are left")
        items.append(raw[offset + 4:offset + 4 + length])
        offset += 4 + length
    if len(items) != count:
        raise ProtocolError(f"input {name!r}: its shape holds {count} element(s), its binary data {len(items)}")
    flat = np.empty(len(items), dtype=object)
    flat[:] = items
    return flat


def _requested(outputs: Any, binary_default: bool) -> tuple[list[str] | None, set[str]]:
    if outputs is None:
        return None, {"*"} if binary_default else set()
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise ProtocolError('"outputs" must be a list of objects with a "name"')
    names = [o["name"] for o in outputs]
    binary = {o["name"] for o in outputs if _object(o.get("parameters"), "output parameters").get(
        "binary_data", binary_default)}
    return names, binary


def encode_response(model_name: str, request: InferRequest, outputs: dict[str, tuple[str, np.ndarray]],
                    version: str | None = None) -> tuple[bytes, int | None]:
    """(body, JSON header length or None): each output JSON or binary, as the request asked."""
    header: dict[str, Any] = {"model_name": model_name, "outputs": []}
    if version is not None:
        header["model_version"] = version
    if request.id is not None:
        header["id"] = request.id
    blobs = []
    for name, (datatype, array) in outputs.items():
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if "*" in request.binary_outputs or name in request.binary_outputs:
            blob = _to_binary(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _to_json(array, datatype)
        header["outputs"].append(tensor)
    text = json.dumps(header).encode()
    return (text, None) if not blobs else (text + b"".join(blobs), len(text))


def _to_binary(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in array.ravel():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=np.dtype(NUMERIC[datatype]).newbyteorder("<")).tobytes()


def _to_json(array: np.ndarray, datatype: str) -> list[Any]:
    if datatype == "BYTES":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
    return array.ravel().tolist()
