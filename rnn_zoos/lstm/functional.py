"""LSTM maths for many weight sets at once.

Parameters are dicts named like the state dict of :class:`LSTMWithHead` (``lstm.weight_ih_l0``,
..., ``head.weight``, ``head.bias``), each tensor with a leading *model* dimension ``M``: one
batched call runs M different RNNs (``torch.bmm``, no Python loop over models). The results equal
``torch.nn.LSTM(batch_first=True)`` followed by ``torch.nn.Linear`` for every model. Builders, checks
and probing encoders all use this one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

Params = dict[str, torch.Tensor]
"""Named parameters; in this module every tensor has a leading model dimension ``M``."""

LSTMState = tuple[torch.Tensor, torch.Tensor]
"""Hidden and cell state, each ``[num_layers, M, B, hidden_size]``."""


@dataclass(frozen=True)
class LSTMArchitecture:
    """Shape of an RNN in a zoo: a stacked LSTM and a linear head on its last layer."""

    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter names and shapes in the order of ``nn.LSTM`` then ``nn.Linear``."""
        gates = 4 * self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            fan_in = self.input_size if layer == 0 else self.hidden_size
            shapes[f"lstm.weight_ih_l{layer}"] = (gates, fan_in)
            shapes[f"lstm.weight_hh_l{layer}"] = (gates, self.hidden_size)
            shapes[f"lstm.bias_ih_l{layer}"] = (gates,)
            shapes[f"lstm.bias_hh_l{layer}"] = (gates,)
        shapes["head.weight"] = (self.output_size, self.hidden_size)
        shapes["head.bias"] = (self.output_size,)
        return shapes

    @property
    def num_parameters(self) -> int:
        """Number of scalar parameters of one RNN."""
        total = 0
        for shape in self.parameter_shapes().values():
            count = 1
            for size in shape:
                count *= size
            total += count
        return total

    def to_dict(self) -> dict[str, int]:
        """The architecture as a JSON-ready dict."""
        return asdict(self)


class LSTMWithHead(nn.Module):
    """One RNN of a zoo as a ``torch.nn.Module``: ``nn.LSTM(batch_first=True)`` named ``lstm``, ``nn.Linear`` named ``head``.

    ``forward`` takes float inputs ``[B, T, input_size]`` or integer token ids ``[B, T]`` (one-hot
    encoded to ``input_size`` classes) and returns the head's logits ``[B, T, output_size]``. Inputs may be
    tensors, NumPy arrays or nested lists (a row of ``datasets.load_dataset``).
    """

    def __init__(self, architecture: LSTMArchitecture) -> None:
        super().__init__()
        self.architecture = architecture
        self.lstm = nn.LSTM(
            architecture.input_size, architecture.hidden_size, architecture.num_layers, batch_first=True
        )
        self.head = nn.Linear(architecture.hidden_size, architecture.output_size)

    def forward(self, inputs: torch.Tensor | np.ndarray | Sequence) -> torch.Tensor:
        """Logits of the head at every position."""
        hidden, _ = self.lstm(self._lstm_inputs(inputs))
        return self.head(hidden)

    def _lstm_inputs(self, inputs: torch.Tensor | np.ndarray | Sequence) -> torch.Tensor:
        """Inputs as the LSTM reads them: a float tensor ``[B, T, input_size]`` of the module's dtype and device,
        token ids one-hot encoded. Raises ``TypeError`` for inputs that are not numbers."""
        try:
            inputs = torch.as_tensor(inputs, device=self.head.weight.device)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"LSTMWithHead reads token ids [B, T] (integers below {self.architecture.input_size}) or float inputs "
                f"[B, T, {self.architecture.input_size}], as a tensor, NumPy array or nested lists; got {type(inputs).__name__} ({error})"
            ) from None
        if inputs.is_floating_point():
            return inputs.to(self.head.weight.dtype)
        return nn.functional.one_hot(inputs.long(), self.architecture.input_size).to(self.head.weight.dtype)

    def log_probs(self, inputs: torch.Tensor | np.ndarray | Sequence) -> torch.Tensor:
        """Log-softmax of the logits: what a zoo's ``log_probs`` column stores."""
        return torch.log_softmax(self(inputs), dim=-1)


def architecture_of(params: Params) -> LSTMArchitecture:
    """Read the architecture off batched parameter shapes (leading model dimension included)."""
    num_layers = sum(1 for name in params if name.startswith("lstm.weight_ih_l"))
    gates, input_size = params["lstm.weight_ih_l0"].shape[-2:]
    output_size = params["head.weight"].shape[-2]
    return LSTMArchitecture(int(input_size), int(gates) // 4, num_layers, int(output_size))


def zero_state(params: Params, batch_size: int) -> LSTMState:
    """All-zero hidden and cell state for ``batch_size`` sequences per model."""
    architecture = architecture_of(params)
    reference = params["lstm.weight_hh_l0"]
    shape = (architecture.num_layers, reference.shape[0], batch_size, architecture.hidden_size)
    zeros = torch.zeros(shape, dtype=reference.dtype, device=reference.device)
    return zeros, zeros.clone()


def _cell(gates: torch.Tensor, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM cell update from pre-activations in PyTorch's gate order (input, forget, cell, output)."""
    input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=-1)
    cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
    return torch.sigmoid(output_gate) * torch.tanh(cell), cell


def lstm_forward(params: Params, inputs: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
    """Run M RNNs over whole sequences.

    Args:
        params: batched parameters, every tensor ``[M, ...]``.
        inputs: ``[M, B, T, input_size]``, or ``[B, T, input_size]`` to feed the same inputs to every model.
        state: carried ``(h, c)`` from an earlier call, each ``[num_layers, M, B, hidden_size]``; zeros if None.

    Returns:
        The head's logits ``[M, B, T, output_size]`` and the final state.
    """
    architecture = architecture_of(params)
    models = params["head.weight"].shape[0]
    if inputs.dim() == 3:
        inputs = inputs.unsqueeze(0).expand(models, -1, -1, -1)
    _, batch, steps, _ = inputs.shape
    hidden0, cell0 = zero_state(params, batch) if state is None else state
    layer_input = inputs
    final_hidden, final_cell = [], []
    for layer in range(architecture.num_layers):
        bias = params[f"lstm.bias_ih_l{layer}"] + params[f"lstm.bias_hh_l{layer}"]
        projected = torch.baddbmm(
            bias.unsqueeze(1),
            layer_input.reshape(models, batch * steps, -1),
            params[f"lstm.weight_ih_l{layer}"].transpose(1, 2),
        ).view(models, batch, steps, -1)
        recurrent = params[f"lstm.weight_hh_l{layer}"].transpose(1, 2)
        hidden, cell = hidden0[layer], cell0[layer]
        outputs = []
        for step_input in projected.unbind(dim=2):  # one unbind: its backward stacks once, not T zero-filled copies
            hidden, cell = _cell(torch.baddbmm(step_input, hidden, recurrent), cell)
            outputs.append(hidden)
        layer_input = torch.stack(outputs, dim=2)
        final_hidden.append(hidden)
        final_cell.append(cell)
    logits = torch.baddbmm(
        params["head.bias"].unsqueeze(1),
        layer_input.reshape(models, batch * steps, -1),
        params["head.weight"].transpose(1, 2),
    ).view(models, batch, steps, -1)
    return logits, (torch.stack(final_hidden), torch.stack(final_cell))


def lstm_step(params: Params, inputs: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
    """Advance M RNNs by one time step: inputs ``[M, B, input_size]`` -> logits ``[M, B, output_size]`` and the new state."""
    logits, state = lstm_forward(params, inputs.unsqueeze(-2), state)
    return logits.squeeze(-2), state


def stack_params(models: list[Params]) -> Params:
    """Stack the parameters of single RNNs (no model dimension) into batched parameters."""
    return {name: torch.stack([model[name] for model in models]) for name in models[0]}


def unstack_params(params: Params) -> list[Params]:
    """Split batched parameters into one dict per model."""
    models = params["head.weight"].shape[0]
    return [{name: tensor[index] for name, tensor in params.items()} for index in range(models)]
