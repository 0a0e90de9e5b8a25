"""The weights blob of format v1: one RNN as a self-describing safetensors file, read as untrusted input.

Tensor names are those of :class:`rnn_zoos.lstm.functional.LSTMWithHead` (``lstm.weight_ih_l0``, ..., ``head.bias``),
float32; the metadata records ``format``, ``cell`` (``lstm``) and the architecture, so a blob saved
alone is a complete model file. The header is checked against the tensors it describes before
anything is allocated.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from ..common.errors import DamagedZooError, ZooError, short
from ..lstm.functional import LSTMArchitecture, Params
from ..lstm.weights import LSTMWeights, shape_difference

WEIGHTS_DTYPE = "F32"
"""The safetensors dtype of every tensor in a weights blob (format v1 stores float32 weights)."""
MAX_HEADER_BYTES = 1 << 20
"""The largest safetensors header a weights blob may have (a 2-layer LSTM of a zoo needs under 1 KiB)."""
MAX_DIMENSION = 1 << 16
"""The largest ``input_size``, ``hidden_size`` or ``output_size`` a weights blob may claim."""
MAX_LAYERS = 1024
"""The largest ``num_layers`` a weights blob may claim."""
ARCHITECTURE_LIMITS = {"input_size": MAX_DIMENSION, "hidden_size": MAX_DIMENSION, "num_layers": MAX_LAYERS, "output_size": MAX_DIMENSION}
MAX_TENSOR_RANK = 8
MAX_OFFSET = 1 << 62
TRUNCATION_HINT = (
    "a blob read through datasets' own 'numpy' or 'torch' format loses its trailing zero bytes to NumPy's bytes dtype: "
    "read rows with rnn_zoos.load_zoo, whose formats keep bytes intact"
)


def encode_weights(params: Params, architecture: LSTMArchitecture) -> bytes:
    """One RNN's parameters (no model dimension) as a self-describing safetensors file, in bytes.

    The header is rewritten with sorted keys (safetensors writes its metadata in hash-map order),
    so equal weights always give equal bytes. Parameters that are not exactly the tensors of
    ``architecture`` (by name and shape) raise ``ValueError``.
    """
    weights = LSTMWeights.from_params(params, architecture)
    if weights.batch_shape:
        raise ValueError(f"encode_weights takes one RNN's parameters; these have the batch shape {weights.batch_shape} "
                         "(encode each RNN of a batch on its own)")
    metadata = {"format": "pt", "cell": "lstm", **{k: str(v) for k, v in architecture.to_dict().items()}}
    tensors = {name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in weights.items()}
    blob = safetensors.torch.save(tensors, metadata=metadata)
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.dumps(json.loads(blob[8 : 8 + size]), separators=(",", ":"), sort_keys=True).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + blob[8 + size :]


def _not_safetensors(reason: str) -> DamagedZooError:
    return DamagedZooError(f"weights blob is not a safetensors file ({reason}); the zoo file holding it is corrupt")


def _read_header(blob: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors blob and the size of the tensor data after it, read within bounds."""
    if not isinstance(blob, bytes):
        raise ZooError(f"a weights blob is bytes (a zoo's weights cell), not {type(blob).__name__}")
    if len(blob) < 8:
        raise _not_safetensors(f"{len(blob)} bytes, too short for the 8-byte header size")
    (size,) = struct.unpack_from("<Q", blob)
    if size > min(len(blob) - 8, MAX_HEADER_BYTES):
        raise _not_safetensors(f"its header size {size:,} exceeds the {len(blob) - 8:,} bytes that follow or the limit of {MAX_HEADER_BYTES:,}")
    try:
        text = blob[8 : 8 + size].decode("utf-8")
        header = json.loads(text) if text.startswith("{") else None
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _not_safetensors(f"its header is not UTF-8 JSON: {short(str(error), 120)}") from None
    if not isinstance(header, dict):
        raise _not_safetensors("its header is not a JSON object")
    return header, len(blob) - 8 - size


def weights_header(blob: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors blob (tensor names, dtypes, shapes and ``__metadata__``).

    The header's stated size must fit in the blob and under :data:`MAX_HEADER_BYTES`, and the header must be a
    UTF-8 JSON object; its entries are not checked (:func:`weights_architecture` checks them).
    """
    return _read_header(blob)[0]


def _metadata_architecture(header: dict[str, Any]) -> LSTMArchitecture:
    """The LSTM architecture that a header's ``__metadata__`` claims, every size within :data:`ARCHITECTURE_LIMITS`."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise DamagedZooError(f"weights blob metadata is {short(metadata)}, not a map of names to strings; the blob is corrupt")
    if metadata.get("cell") != "lstm":
        raise ZooError(f"weights blob holds a {short(metadata.get('cell', 'unknown'))} cell; rnn_zoos reads LSTM weights (cell 'lstm')")
    sizes = {}
    for key, limit in ARCHITECTURE_LIMITS.items():
        text = metadata.get(key, "")
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and 1 <= int(text) <= limit):
            raise DamagedZooError(f"weights blob metadata {key}={short(text)} is not a whole number from 1 to {limit:,}; "
                                  "the blob was not written by rnn_zoos or is corrupt")
        sizes[key] = int(text)
    return LSTMArchitecture(**sizes)


def _is_sizes(value: Any, length: int | None = None) -> bool:
    """Whether ``value`` is a JSON list of at most :data:`MAX_TENSOR_RANK` (or exactly ``length``) sizes in ``[0, MAX_OFFSET]``."""
    return (
        isinstance(value, list)
        and (len(value) == length if length is not None else len(value) <= MAX_TENSOR_RANK)
        and all(isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= MAX_OFFSET for item in value)
    )


def _tensor_shapes(header: dict[str, Any], data_size: int) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a header, after checking each tensor's dtype and byte range.

    Every tensor must be float32 with as many bytes as its shape needs, and together their byte
    ranges must tile the ``data_size`` bytes of tensor data exactly (no gap, overlap or excess).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    spans: list[tuple[int, int]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        entry = entry if isinstance(entry, dict) else {}
        shape, offsets, dtype = entry.get("shape"), entry.get("data_offsets"), entry.get("dtype")
        if not (_is_sizes(shape) and _is_sizes(offsets, 2) and offsets[0] <= offsets[1]):
            raise DamagedZooError(f"weights blob tensor {short(name)} has no valid shape and data_offsets; the blob is corrupt")
        if dtype != WEIGHTS_DTYPE:
            raise DamagedZooError(f"weights blob tensor {short(name)} has the dtype {short(dtype)}; rnn_zoos format v1 stores float32 ({WEIGHTS_DTYPE}) weights")
        begin, end = offsets
        if end > data_size:
            raise DamagedZooError(f"weights blob tensor {short(name)} lies at bytes {begin:,} to {end:,} of the tensor data, but the blob "
                                  f"holds only {data_size:,}: it is truncated or its header is corrupt ({TRUNCATION_HINT})")
        if end - begin != 4 * math.prod(shape):
            raise DamagedZooError(f"weights blob tensor {short(name)} has {end - begin:,} bytes for the float32 shape {tuple(shape)}; the blob is corrupt")
        shapes[name] = tuple(shape)
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise DamagedZooError(f"weights blob tensors overlap or leave a gap at byte {position:,} of the tensor data; the blob is corrupt")
        position = end
    if position != data_size:
        raise DamagedZooError(f"weights blob has {data_size - position:,} bytes after its last tensor; the blob is corrupt")
    return shapes


def weights_architecture(blob: bytes) -> LSTMArchitecture:
    """The architecture recorded in a weights blob's metadata, after checking the whole blob without allocating tensors.

    A blob is untrusted input: its header must be sane (:func:`weights_header`), its metadata an LSTM
    within :data:`ARCHITECTURE_LIMITS`, and its tensors exactly the float32 tensors of that architecture,
    by name and shape, filling the blob's bytes exactly. Anything else raises :class:`ZooError`.
    """
    header, data_size = _read_header(blob)
    architecture = _metadata_architecture(header)
    shapes = _tensor_shapes(header, data_size)
    expected = architecture.parameter_shapes()
    if shapes != expected:
        raise DamagedZooError(f"weights blob tensors do not match its metadata {architecture}: {shape_difference(shapes, expected)}; the blob is corrupt")
    return architecture


def decode_weights(blob: bytes, architecture: LSTMArchitecture | None = None) -> Params:
    """Decode a weights blob into named float32 tensors (no model dimension).

    The blob is checked completely before any tensor is allocated (:func:`weights_architecture`). If
    ``architecture`` is given, the blob must hold exactly that architecture (a foreign blob raises
    :class:`ZooError` naming what differs).
    """
    found = weights_architecture(blob)
    if architecture is not None and found != architecture:
        raise ZooError(f"weights blob holds {found}, expected {architecture}; it belongs to another zoo")
    try:
        tensors = safetensors.torch.load(blob)
    except SafetensorError as error:  # a rule of the safetensors format the checks above do not restate (e.g. JSON escapes)
        raise _not_safetensors(short(str(error), 120)) from None
    return {name: tensors[name] for name in found.parameter_shapes()}
