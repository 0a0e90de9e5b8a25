"""Functionalist encoders: they run the RNNs under study on probe inputs and read their answers.

As the paper's ``InteractiveEncoder`` (``noninteractive`` sets its interactive weight to 0 and its
static weight to 1): a reader of two residual ``LSTMCell``\\ s of 256 starts from a learned BOS
vector; at each of ``probing_length`` steps a probe input is decoded (``proj_up``: 256 -> 128 per
probe sequence, ReLU; decoder 128 -> 128 -> input size) either from the reader's last output plus
``probing_static_weight`` (the paper's ``static_weight``, default 0) times a learned static code of
that step (interactive), or from the static code alone (non-interactive), passed through a
softmax over tokens (formal languages) or a sigmoid (MNIST tiles), and fed to the RNN, which keeps
its state across steps; the RNN's raw head outputs of all ``probing_sequences`` parallel probes,
through a linear layer and a sigmoid, are the reader's next input. After a learned EOS input the
reader's output passes an MLP 256 -> 128 -> 16. The RNNs run through :meth:`LSTMWeights.run` and
:meth:`LSTMWeights.step` (all of a batch at once, differentiable with respect to the probes), as any
functionalist encoder may run them (:mod:`.registry`); an RNN's answers depend only on
its function, so both encoders are invariant to neuron permutations. Two parameters of the paper's
module that no computation reads (learned initial reader states, a static code for one step past
the last) are left out.
"""

from __future__ import annotations

import torch
from torch import nn

from rnn_zoos.lstm.functional import Params
from rnn_zoos.lstm.weights import LSTMWeights, as_weights

from .base import EncoderShape, WeightEncoder, mlp


class ProbingEncoder(WeightEncoder):
    """The reader, the probe decoder and the answer reader shared by both probing encoders."""

    interactive: bool = True

    def __init__(
        self, shape: EncoderShape, hidden: int = 256, layers: int = 2, encoding: int = 128, mlp_hidden: int = 128
    ) -> None:
        super().__init__(shape)
        arch = shape.architecture
        sequences, length = shape.probing_sequences, shape.probing_length
        if sequences < 1 or length < 1:
            raise ValueError(f"probing needs at least one sequence of at least one step, got {sequences} x {length}")
        self.encoding = encoding
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.bos = nn.Parameter(torch.zeros(hidden))
        self.eos = nn.Parameter(torch.zeros(hidden))
        self.codes = nn.Parameter(torch.randn(length, hidden))
        self.expand = mlp(hidden, encoding * sequences, output=nn.ReLU())
        probe_activation = nn.Softmax(dim=-1) if shape.token_vocab else nn.Sigmoid()
        self.decode = mlp(encoding, mlp_hidden, arch.input_size, output=probe_activation)
        self.read = mlp(arch.output_size * sequences, hidden, output=nn.Sigmoid())
        self.readout = mlp(hidden, mlp_hidden, shape.embedding_dim)

    def probes(self, source: torch.Tensor) -> torch.Tensor:
        """Probe inputs ``[..., sequences, input_size]`` from reader outputs or static codes ``[..., hidden]``."""
        expanded = self.expand(source)
        return self.decode(expanded.reshape(*expanded.shape[:-1], self.shape.probing_sequences, self.encoding))

    def _advance(self, reader_input: torch.Tensor, states: list[tuple[torch.Tensor, torch.Tensor] | None]) -> torch.Tensor:
        """One step of the residual reader; updates ``states`` in place and returns its last output."""
        value = reader_input
        for index, cell in enumerate(self.cells):
            hidden, cell_state = cell(value, states[index])
            states[index] = (hidden, cell_state)
            value = hidden + value
        return value

    def forward(self, weights: LSTMWeights | Params) -> torch.Tensor:
        rnns = as_weights(weights, self.shape.architecture)
        models = rnns.batch_shape[0]
        states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.cells)
        output = self._advance(self.bos.expand(models, -1), states)
        if not self.interactive:  # the probes do not depend on the answers: run every RNN over them at once
            static = self.probes(self.codes).transpose(0, 1)  # [sequences, length, input_size]
            all_answers, _ = rnns.run(static)  # [M, sequences, length, output_size]
        rnn_state = None
        for step in range(self.shape.probing_length):
            if self.interactive:
                source = output + self.shape.probing_static_weight * self.codes[step]
                answers, rnn_state = rnns.step(self.probes(source), rnn_state)
            else:
                answers = all_answers[:, :, step]
            output = self._advance(self.read(answers.reshape(models, -1)), states)
        return self.readout(self._advance(self.eos.expand(models, -1), states))


class NoninteractiveProbingEncoder(ProbingEncoder):
    """Learned static probe sequences, the same for every RNN; a recurrent reader of the RNN's answers."""

    name = "noninteractive_probing"
    interactive = False


class InteractiveProbingEncoder(ProbingEncoder):
    """Each probe input is decoded from the reader's state, which has read the RNN's earlier answers."""

    name = "interactive_probing"
    interactive = True
