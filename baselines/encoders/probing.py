"""Functionalist encoders: they run the RNNs under study on probe inputs and read their answers.

The RNNs run through :func:`rnn_zoos.lstm.lstm_forward` / :func:`rnn_zoos.lstm.lstm_step`, all of
a batch at once and differentiable with respect to the probes. Probe inputs are distributions over
the tokens (softmax of learned logits) for formal languages, real vectors (tiles) for MNIST. An
RNN's answers depend only on its function, so both encoders are invariant to neuron permutations.
"""

from __future__ import annotations

import torch
from torch import nn

from rnn_zoos.lstm import Params, lstm_forward, lstm_step

from .base import EncoderShape, WeightEncoder, mlp


def probe_inputs(raw: torch.Tensor, token_vocab: int | None) -> torch.Tensor:
    """What the RNN reads: a softmax over tokens for formal languages, the raw values otherwise."""
    return torch.softmax(raw, dim=-1) if token_vocab else raw


class NoninteractiveProbingEncoder(WeightEncoder):
    """A learned set of probe sequences, the same for every RNN; the RNNs' output distributions feed an MLP."""

    name = "noninteractive_probing"

    def __init__(self, shape: EncoderShape, sequences: int = 4, steps: int = 20, hidden: int = 256) -> None:
        super().__init__(shape)
        arch = shape.architecture
        self.probes = nn.Parameter(torch.randn(sequences, steps, arch.input_size))
        self.readout = mlp(sequences * steps * arch.output_size, hidden, hidden, shape.embedding_dim)

    def forward(self, params: Params) -> torch.Tensor:
        logits, _ = lstm_forward(params, probe_inputs(self.probes, self.shape.token_vocab))
        return self.readout(torch.log_softmax(logits, dim=-1).flatten(1))


class InteractiveProbingEncoder(WeightEncoder):
    """An LSTM that asks and listens: each probe input comes from its state, which reads the RNN's previous answer."""

    name = "interactive_probing"

    def __init__(self, shape: EncoderShape, streams: int = 4, steps: int = 20, hidden: int = 112) -> None:
        super().__init__(shape)
        arch = shape.architecture
        self.steps = steps
        self.initial = nn.Parameter(torch.randn(streams, 2, hidden) * 0.1)
        self.cell = nn.LSTMCell(arch.output_size, hidden)
        self.ask = nn.Linear(hidden, arch.input_size)
        self.readout = mlp(streams * hidden, 2 * hidden, shape.embedding_dim)

    def forward(self, params: Params) -> torch.Tensor:
        models = params["head.weight"].shape[0]
        streams, _, hidden = self.initial.shape
        state = (self.initial[:, 0].repeat(models, 1), self.initial[:, 1].repeat(models, 1))  # [M * streams, hidden]
        rnn_state = None
        for _ in range(self.steps):
            question = probe_inputs(self.ask(state[0]), self.shape.token_vocab).view(models, streams, -1)
            answer, rnn_state = lstm_step(params, question, rnn_state)
            state = self.cell(torch.log_softmax(answer, dim=-1).reshape(models * streams, -1), state)
        return self.readout(state[0].reshape(models, streams * hidden))
