"""A deep-weight-space network for LSTMs: permutation-equivariant layers over neurons and weights, then pooling.

The weights are read as a graph. Nodes: the hidden neurons of each layer (sets whose order does
not matter), the input units and the output units (fixed order). Edges, with channels:
``weight_ih_l{l}`` from the layer's inputs to its neurons and ``weight_hh_l{l}`` among its neurons
(4 channels: the gate blocks of a neuron move together), ``head.weight`` from the last layer to the
outputs (1 channel). Node features start from the biases. Every layer updates an edge from itself,
its two end nodes and the means over its row and column, and a node from itself, the mean of its
set and the means of its incoming and outgoing edges: all shared across the neurons of a set, so
permuting a layer's neurons permutes the outputs the same way (equivariance). Mean pooling over
each neuron set makes the embedding invariant.
"""

from __future__ import annotations

import torch
from torch import nn

from rnn_zoos.lstm import LSTMArchitecture, Params

from .base import EncoderShape, WeightEncoder, mlp

Nodes = dict[str, torch.Tensor]
"""Node features by set: ``[M, n, C]``."""
Edges = dict[str, torch.Tensor]
"""Edge features by type: ``[M, targets, sources, C]``."""


def graph_layout(architecture: LSTMArchitecture) -> dict[str, tuple[str, str]]:
    """Edge types and their (target set, source set): ``ih{l}``, ``hh{l}`` for each layer, ``head``."""
    edges = {}
    for layer in range(architecture.num_layers):
        edges[f"ih{layer}"] = (f"h{layer}", "in" if layer == 0 else f"h{layer - 1}")
        edges[f"hh{layer}"] = (f"h{layer}", f"h{layer}")
    edges["head"] = ("out", f"h{architecture.num_layers - 1}")
    return edges


def weight_graph(params: Params, architecture: LSTMArchitecture) -> tuple[Nodes, Edges]:
    """The weights as node and edge features (gates as channels)."""
    models = params["head.weight"].shape[0]
    size = architecture.hidden_size
    nodes: Nodes = {"in": params["head.weight"].new_zeros(models, architecture.input_size, 1)}
    edges: Edges = {}
    for layer in range(architecture.num_layers):
        biases = [params[f"lstm.bias_{kind}_l{layer}"].reshape(models, 4, size).transpose(1, 2) for kind in ("ih", "hh")]
        nodes[f"h{layer}"] = torch.cat(biases, dim=-1)
        for kind in ("ih", "hh"):
            weight = params[f"lstm.weight_{kind}_l{layer}"]
            edges[f"{kind}{layer}"] = weight.reshape(models, 4, size, weight.shape[-1]).permute(0, 2, 3, 1)
    nodes["out"] = params["head.bias"].unsqueeze(-1)
    edges["head"] = params["head.weight"].unsqueeze(-1)
    return nodes, edges


class EquivariantLayer(nn.Module):
    """One permutation-equivariant layer over a weight graph with ``node_dim``/``edge_dim`` channels."""

    def __init__(self, layout: dict[str, tuple[str, str]], node_dim: int, edge_dim: int) -> None:
        super().__init__()
        self.layout = layout
        sets = sorted({name for pair in layout.values() for name in pair})
        linear = lambda fan_in, fan_out: nn.Linear(fan_in, fan_out)  # noqa: E731
        self.edge_terms = nn.ModuleDict({
            edge: nn.ModuleDict({"self": linear(edge_dim, edge_dim), "target": linear(node_dim, edge_dim), "source": linear(node_dim, edge_dim),
                                 "row": linear(edge_dim, edge_dim), "column": linear(edge_dim, edge_dim)})
            for edge in layout
        })
        self.node_terms = nn.ModuleDict({name: nn.ModuleDict({"self": linear(node_dim, node_dim), "set": linear(node_dim, node_dim)}) for name in sets})
        self.incoming = nn.ModuleDict({edge: linear(edge_dim, node_dim) for edge in layout})
        self.outgoing = nn.ModuleDict({edge: linear(edge_dim, node_dim) for edge in layout})

    def forward(self, nodes: Nodes, edges: Edges) -> tuple[Nodes, Edges]:
        new_edges = {}
        row_means = {edge: edges[edge].mean(dim=2) for edge in self.layout}  # [M, targets, C]: mean over sources
        column_means = {edge: edges[edge].mean(dim=1) for edge in self.layout}  # [M, sources, C]: mean over targets
        for edge, (target, source) in self.layout.items():
            terms = self.edge_terms[edge]
            new_edges[edge] = (terms["self"](edges[edge]) + terms["target"](nodes[target]).unsqueeze(2) + terms["source"](nodes[source]).unsqueeze(1)
                               + terms["row"](row_means[edge]).unsqueeze(2) + terms["column"](column_means[edge]).unsqueeze(1))
        new_nodes = {}
        for name, features in nodes.items():
            terms = self.node_terms[name]
            value = terms["self"](features) + terms["set"](features.mean(dim=1, keepdim=True))
            for edge, (target, source) in self.layout.items():
                if target == name:
                    value = value + self.incoming[edge](row_means[edge])
                if source == name:
                    value = value + self.outgoing[edge](column_means[edge])
            new_nodes[name] = value
        return new_nodes, new_edges


class DWSEncoder(WeightEncoder):
    """Equivariant layers over the weight graph, mean pooling over each neuron set, then an MLP (invariant)."""

    name = "dws"

    def __init__(self, shape: EncoderShape, node_dim: int = 48, edge_dim: int = 16, layers: int = 3) -> None:
        super().__init__(shape)
        arch = shape.architecture
        self.layout = graph_layout(arch)
        node_inputs = {"in": 1, "out": 1, **{f"h{layer}": 8 for layer in range(arch.num_layers)}}
        self.node_in = nn.ModuleDict({name: nn.Linear(size, node_dim) for name, size in node_inputs.items()})
        self.edge_in = nn.ModuleDict({edge: nn.Linear(1 if edge == "head" else 4, edge_dim) for edge in self.layout})
        # the input and output units keep their order, so they may carry an identity
        self.identity = nn.ParameterDict({
            "in": nn.Parameter(torch.randn(arch.input_size, node_dim) * 0.1),
            "out": nn.Parameter(torch.randn(arch.output_size, node_dim) * 0.1),
        })
        self.layers = nn.ModuleList(EquivariantLayer(self.layout, node_dim, edge_dim) for _ in range(layers))
        pooled = arch.num_layers * node_dim + (arch.input_size + arch.output_size) * node_dim + len(self.layout) * edge_dim
        self.readout = mlp(pooled, 2 * node_dim, shape.embedding_dim)

    def equivariant_features(self, params: Params) -> tuple[Nodes, Edges]:
        """Node and edge features after every equivariant layer (permuting neurons permutes them alike)."""
        raw_nodes, raw_edges = weight_graph(params, self.shape.architecture)
        nodes = {name: layer(raw_nodes[name]) for name, layer in self.node_in.items()}
        for name, identity in self.identity.items():
            nodes[name] = nodes[name] + identity
        edges = {edge: layer(raw_edges[edge]) for edge, layer in self.edge_in.items()}
        for index, layer in enumerate(self.layers):
            nodes, edges = layer(nodes, edges)
            if index < len(self.layers) - 1:
                nodes = {name: nn.functional.gelu(value) for name, value in nodes.items()}
                edges = {name: nn.functional.gelu(value) for name, value in edges.items()}
        return nodes, edges

    def forward(self, params: Params) -> torch.Tensor:
        nodes, edges = self.equivariant_features(params)
        pooled = [nodes[f"h{layer}"].mean(dim=1) for layer in range(self.shape.architecture.num_layers)]
        pooled += [nodes["in"].flatten(1), nodes["out"].flatten(1)]
        pooled += [edges[edge].mean(dim=(1, 2)) for edge in self.layout]
        return self.readout(torch.cat(pooled, dim=-1))
