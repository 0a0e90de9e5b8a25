"""Typed LSTM weights: the parameters of a stacked LSTM with a linear head, and their gate layout, defined once.

``nn.LSTM`` stacks the four gates of a layer along the rows of each of its tensors, in PyTorch's
order input, forget, cell, output (i, f, g, o; :data:`GATES`): ``weight_ih_l{l}`` is
``[4 * H, fan_in]`` and its row ``g * H + j`` belongs to gate ``g`` of hidden neuron ``j``; likewise
``weight_hh_l{l}`` ``[4 * H, H]`` and the biases ``[4 * H]``. :class:`LSTMWeights` holds these
tensors layer by layer, with any leading batch dimensions (the model dimension ``M`` of
:mod:`rnn_zoos.lstm`), checks them against an :class:`~rnn_zoos.lstm.functional.LSTMArchitecture`, and gives
what the rest of the library reads: the gates as an axis of their own (``[..., 4, H, fan_in]``), the
gates as channels (the deep-weight-space encoder), every weight row with its bias (the parameter
transformer), all weights as one vector, hidden-neuron permutations (:mod:`rnn_zoos.lstm.symmetry`), and
the RNNs themselves run on inputs (the probing encoders).
Conversion from and to the flat ``Params`` dict shares storage: no tensor is copied.

:class:`LSTMTensors` is the same structure, one tensor per parameter, for tensors of any layout
(the features of a weight-space network), as nfn's ``WeightSpaceFeatures`` is for MLPs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..common.errors import short
from .functional import LSTMArchitecture, LSTMState, Params, lstm_forward, lstm_step

GATES = ("input", "forget", "cell", "output")
"""The gate blocks of an LSTM tensor's rows, in PyTorch's order (i, f, g, o)."""
HEAD_WEIGHT, HEAD_BIAS = "head.weight", "head.bias"


class LayerTensors(NamedTuple):
    """The four tensors of one LSTM layer, named and ordered as ``nn.LSTM`` names and orders them."""

    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: torch.Tensor
    bias_hh: torch.Tensor


def _kinds(layer: LayerTensors) -> Iterator[tuple[str, torch.Tensor]]:
    """``(kind, tensor)`` pairs of a layer: ``("weight_ih", ...)``, ..., ``("bias_hh", ...)``."""
    return zip(LayerTensors._fields, layer)


def parameter_name(kind: str, layer: int) -> str:
    """The ``Params`` name of a layer's tensor: ``parameter_name("weight_hh", 1) == "lstm.weight_hh_l1"``."""
    return f"lstm.{kind}_l{layer}"


def _gate_dim(kind: str) -> int:
    """The dimension of a layer tensor that stacks the gates: rows of a weight (-2), entries of a bias (-1)."""
    return -2 if kind.startswith("weight") else -1


def split_gates(tensor: torch.Tensor, kind: str) -> torch.Tensor:
    """A view of a layer tensor with the gates as their own axis: ``[..., 4H, fan_in]`` -> ``[..., 4, H, fan_in]``,
    ``[..., 4H]`` -> ``[..., 4, H]`` (``kind`` is a field of :class:`LayerTensors`)."""
    dim = _gate_dim(kind)
    return tensor.unflatten(dim, (len(GATES), tensor.shape[dim] // len(GATES)))


def merge_gates(gated: torch.Tensor, kind: str) -> torch.Tensor:
    """The inverse of :func:`split_gates`: ``[..., 4, H, fan_in]`` -> ``[..., 4H, fan_in]`` (a view where the strides allow)."""
    dim = _gate_dim(kind)
    return gated.flatten(dim - 1, dim)


def weight_matrix_shapes(architecture: LSTMArchitecture) -> list[tuple[int, int]]:
    """``(rows, columns)`` of every weight matrix, in the order of :meth:`LSTMTensors.matrices`."""
    return [shape for name, shape in architecture.parameter_shapes().items() if len(shape) == 2]


def _listing(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def shape_difference(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]) -> str:
    """The tensors that are missing, unexpected or of another shape, a few of each; empty if the shapes agree.

    Names are shortened for messages (they may come from untrusted files).
    """
    parts = []
    if missing := [name for name in expected if name not in found]:
        parts.append(f"missing {_listing(missing)}")
    if extra := [short(name) for name in found if name not in expected]:
        parts.append(f"unexpected {_listing(extra)}")
    if wrong := [f"{name} {found[name]} (expected {shape})"
                 for name, shape in expected.items() if found.get(name, shape) != shape]:
        parts.append(f"shapes {_listing(wrong)}")
    return "; ".join(parts)


def _take(tensor: torch.Tensor, perm: torch.Tensor, dim: int, batch_ndim: int) -> torch.Tensor:
    """Select along ``dim`` (negative) of ``tensor`` ``[*batch, ...]`` with per-model indices ``perm`` ``[*batch, n]``.

    ``perm``'s batch dimensions may be fewer than ``batch_ndim`` or of size 1: they broadcast.
    """
    leading = perm.shape[:-1]
    if len(leading) > batch_ndim:
        raise ValueError(f"a permutation of shape {tuple(perm.shape)} has more batch dimensions than the weights ({batch_ndim})")
    between = tensor.dim() + dim - batch_ndim  # dimensions between the batch and ``dim``
    index = perm.reshape((1,) * (batch_ndim - len(leading)) + leading + (1,) * between + perm.shape[-1:] + (1,) * (-dim - 1))
    shape = list(tensor.shape)
    shape[dim] = perm.shape[-1]
    return torch.gather(tensor, dim, index.expand(shape))  # not take_along_dim: it materialises the broadcast index


@dataclass(frozen=True, eq=False)
class LSTMTensors:
    """One tensor per parameter of a stacked LSTM with a linear head, in any layout (compared by identity, not value).

    Iteration order is the parameter order of :meth:`LSTMArchitecture.parameter_shapes`.
    """

    layers: tuple[LayerTensors, ...]
    head_weight: torch.Tensor
    head_bias: torch.Tensor

    @property
    def num_layers(self) -> int:
        """Number of LSTM layers."""
        return len(self.layers)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` pairs named as in ``Params``, in parameter order."""
        for index, layer in enumerate(self.layers):
            for kind, tensor in _kinds(layer):
                yield parameter_name(kind, index), tensor
        yield HEAD_WEIGHT, self.head_weight
        yield HEAD_BIAS, self.head_bias

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor, in parameter order."""
        return [tensor for _, tensor in self.items()]

    def to_params(self) -> Params:
        """The tensors as a ``{name: tensor}`` dict in parameter order (the same tensors, not copies)."""
        return dict(self.items())

    def matrices(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every weight matrix with its bias, in parameter order: ``(weight_ih_l0, bias_ih_l0)``,
        ``(weight_hh_l0, bias_hh_l0)``, ..., ``(head_weight, head_bias)``."""
        pairs = []
        for layer in self.layers:
            pairs += [(layer.weight_ih, layer.bias_ih), (layer.weight_hh, layer.bias_hh)]
        return [*pairs, (self.head_weight, self.head_bias)]

    def map(self, function: Callable[[torch.Tensor], torch.Tensor]) -> LSTMTensors:
        """The same structure with ``function`` applied to every tensor (e.g. ``torch.relu``, ``Tensor.detach``)."""
        return dataclasses.replace(
            self,
            layers=tuple(LayerTensors(*map(function, layer)) for layer in self.layers),
            head_weight=function(self.head_weight),
            head_bias=function(self.head_bias),
        )


@dataclass(frozen=True, eq=False)
class LSTMWeights(LSTMTensors):
    """The parameters of stacked LSTMs with a linear head in ``nn.LSTM``'s layout, checked against their architecture.

    Every tensor is ``[*batch_shape, *shape]`` with the shape :meth:`LSTMArchitecture.parameter_shapes`
    gives and the same leading ``batch_shape`` (``()`` for one RNN, ``(M,)`` for the batched
    parameters of :mod:`rnn_zoos.lstm`). A wrong name, shape or batch shape raises ``ValueError``.
    """

    architecture: LSTMArchitecture

    def __post_init__(self) -> None:
        batch = self.batch_shape
        expected = {name: batch + shape for name, shape in self.architecture.parameter_shapes().items()}
        found = {name: tuple(tensor.shape) for name, tensor in self.items()}
        if problems := shape_difference(found, expected):
            raise ValueError(f"LSTM weights do not match {self.architecture} with batch shape {batch}: {problems}")

    @classmethod
    def from_params(cls, params: Params, architecture: LSTMArchitecture | None = None) -> LSTMWeights:
        """Type a ``{name: tensor}`` dict (the tensors themselves, no copies); the architecture is read off the
        shapes unless given. Raises ``ValueError`` naming the missing, unexpected or misshapen tensors."""
        if architecture is None:
            architecture = _architecture_of(params)
        expected = architecture.parameter_shapes()
        if problems := shape_difference({name: expected.get(name, ()) for name in params}, expected):
            raise ValueError(f"LSTM parameters do not match {architecture}: {problems}")
        layers = tuple(
            LayerTensors(*(params[parameter_name(kind, index)] for kind in LayerTensors._fields))
            for index in range(architecture.num_layers)
        )
        return cls(layers, params[HEAD_WEIGHT], params[HEAD_BIAS], architecture)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading dimensions shared by every tensor: ``()`` for one RNN, ``(M,)`` for M RNNs."""
        return tuple(self.head_bias.shape[:-1])

    @property
    def hidden_size(self) -> int:
        """Neurons per LSTM layer."""
        return self.architecture.hidden_size

    def gates(self, layer: int, kind: str) -> torch.Tensor:
        """A view of one layer tensor with the gates as an axis in :data:`GATES` order: ``weight_ih`` and
        ``weight_hh`` as ``[*batch, 4, H, fan_in]``, ``bias_ih`` and ``bias_hh`` as ``[*batch, 4, H]``."""
        return split_gates(getattr(self.layers[layer], kind), kind)

    def gate_channels(self) -> LSTMTensors:
        """The tensors with the gates as a last, channel dimension (the paper's ``prepare_lstm_params_for_np``):
        layer weights ``[*batch, H, fan_in, 4]``, layer biases ``[*batch, H, 4]`` (views), the head's weight
        ``[*batch, O, H, 4]`` and bias ``[*batch, O, 4]`` (its one channel repeated, an expanded view)."""
        layers = tuple(
            LayerTensors(*(split_gates(tensor, kind).movedim(_gate_dim(kind) - 1, -1) for kind, tensor in _kinds(layer)))
            for layer in self.layers
        )
        repeat = lambda tensor: tensor.unsqueeze(-1).expand(*tensor.shape, len(GATES))  # noqa: E731
        return LSTMTensors(layers, repeat(self.head_weight), repeat(self.head_bias))

    def rows_with_bias(self) -> list[torch.Tensor]:
        """Every weight matrix with its bias appended as a last column, ``[*batch, rows, columns + 1]``, in the order
        of :meth:`matrices` (the parameter transformer's tokens)."""
        return [torch.cat([weight, bias.unsqueeze(-1)], dim=-1) for weight, bias in self.matrices()]

    def flatten(self) -> torch.Tensor:
        """All parameters as one vector per RNN, ``[*batch, num_parameters]``, in parameter order."""
        dims = len(self.batch_shape)
        return torch.cat([tensor.flatten(dims) for tensor in self.tensors()], dim=-1)

    def run(self, inputs: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """Run the M RNNs (batch shape ``(M,)``) over sequences, differentiably in the weights and the inputs
        (:func:`rnn_zoos.lstm.functional.lstm_forward`): inputs ``[M, B, T, input_size]``, or ``[B, T, input_size]`` for the same
        inputs to every RNN, give the head's logits ``[M, B, T, output_size]`` and the final state."""
        return lstm_forward(self.to_params(), inputs, state)

    def step(self, inputs: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """Advance the M RNNs by one time step from ``state`` (zeros if None): inputs ``[M, B, input_size]`` give
        logits ``[M, B, output_size]`` and the new state (:func:`rnn_zoos.lstm.functional.lstm_step`)."""
        return lstm_step(self.to_params(), inputs, state)

    def permute_hidden(self, perms: Sequence[torch.Tensor]) -> LSTMWeights:
        """Permute the hidden neurons of every layer; the permuted RNNs compute the same functions.

        Neuron ``j`` of layer ``l`` owns its row in every gate block of the layer's four tensors, its
        column of ``weight_hh_l{l}`` and its column of the next layer's ``weight_ih`` (of the head's
        weight after the last layer); all of them move together.

        Args:
            perms: one permutation per layer, ``[*batch, H]`` (leading dimensions broadcast, so ``[H]``
                permutes every RNN alike); new neuron ``j`` is old neuron ``perm[j]``.
        """
        if len(perms) != self.num_layers:
            raise ValueError(f"permute_hidden needs one permutation per layer ({self.num_layers}), got {len(perms)}")
        batch = len(self.batch_shape)
        layers, head_weight = list(self.layers), self.head_weight
        for index, perm in enumerate(perms):
            if perm.shape[-1:] != (self.hidden_size,):
                raise ValueError(f"the permutation of layer {index} has the shape {tuple(perm.shape)}; "
                                 f"its last dimension must be hidden_size ({self.hidden_size})")
            rows = LayerTensors(*(
                merge_gates(_take(split_gates(tensor, kind), perm, _gate_dim(kind), batch), kind)
                for kind, tensor in _kinds(layers[index])
            ))
            layers[index] = rows._replace(weight_hh=_take(rows.weight_hh, perm, -1, batch))
            if index + 1 < self.num_layers:
                layers[index + 1] = layers[index + 1]._replace(weight_ih=_take(layers[index + 1].weight_ih, perm, -1, batch))
            else:
                head_weight = _take(head_weight, perm, -1, batch)
        return dataclasses.replace(self, layers=tuple(layers), head_weight=head_weight)


def _architecture_of(params: Params) -> LSTMArchitecture:
    """The architecture that ``params`` claims: layers counted by name, sizes read off the shapes."""
    names = (parameter_name("weight_ih", 0), parameter_name("weight_hh", 0), HEAD_WEIGHT)
    if missing := [name for name in names if name not in params]:
        raise ValueError(f"LSTM parameters need {', '.join(names)} to tell their architecture; missing {', '.join(missing)}")
    if params[names[0]].dim() < 2 or params[HEAD_WEIGHT].dim() < 2:
        raise ValueError("LSTM weight matrices have at least two dimensions (rows, columns)")
    num_layers = 0
    while parameter_name("weight_ih", num_layers) in params:
        num_layers += 1
    return LSTMArchitecture(
        input_size=int(params[names[0]].shape[-1]),
        hidden_size=int(params[names[1]].shape[-1]),
        num_layers=num_layers,
        output_size=int(params[HEAD_WEIGHT].shape[-2]),
    )


def as_weights(params: Params | LSTMWeights, architecture: LSTMArchitecture | None = None) -> LSTMWeights:
    """``params`` typed (:meth:`LSTMWeights.from_params`), or returned as they are if already typed."""
    return params if isinstance(params, LSTMWeights) else LSTMWeights.from_params(params, architecture)
