"""Shareable models: the weight encoder and the emulator as ``transformers`` ``PreTrainedModel``\\ s.

Both are registered with ``transformers``' Auto classes when :mod:`rnn_zoos` is imported, so
``AutoModel.from_pretrained(folder_or_hub_id)`` loads them from any folder. ``save_pretrained`` also
writes a model card (``README.md``, through ``huggingface_hub``'s :class:`ModelCard`: ``library_name:
rnn-zoos``, the zoo as ``datasets``, the training figures as ``model-index``, the install line) and a
loader (:data:`LOADER_FILE`, named in ``config.json``'s ``auto_map``) that only imports this library, so
that without it ``from_pretrained`` fails with our own one-line install hint instead of "update
Transformers"; ``push_to_hub`` uploads what ``save_pretrained`` wrote. ``forward`` returns a
``transformers`` :class:`ModelOutput`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput
from transformers.utils import logging as transformers_logging

from ..common.files import ordinary_permissions
from ..lstm.functional import LSTMArchitecture, Params
from ..lstm.weights import LSTMWeights, as_weights
from ..hub.provenance import PAPER_ARXIV, code_url, install_command
from ..hub.sources import is_repo_id, looks_like_path

if TYPE_CHECKING:
    from ..zoos import ZooKind

from .encoders import ENCODERS, EncoderShape, known_encoder
from .encoders.registry import is_code_reference


class RNNEncoderConfig(PretrainedConfig):
    """Which encoder, for which RNNs, and how it was trained.

    ``encoder``: the encoder's reference (:mod:`rnn_zoos.models.encoders.registry`); ``encoder_package``: the package
    its code comes from (None: built in); ``encoder_config``: the config of an encoder that is itself a
    ``PreTrainedModel``.
    """

    model_type = "rnn_zoos_encoder"

    def __init__(
        self,
        encoder: str = "layerwise_statistics",
        zoo: str | None = None,
        rnn_architecture: dict[str, int] | None = None,
        token_vocab: int | None = 6,
        embedding_dim: int = 16,
        probing_sequences: int = 1,
        probing_length: int = 22,
        probing_static_weight: float = 0.0,
        training: dict[str, Any] | None = None,
        encoder_package: str | None = None,
        encoder_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.encoder = encoder
        self.encoder_package = encoder_package
        self.encoder_config = encoder_config
        self.zoo = zoo
        self.rnn_architecture = rnn_architecture or {"input_size": 6, "hidden_size": 32, "num_layers": 2, "output_size": 6}
        self.token_vocab = token_vocab
        self.embedding_dim = embedding_dim
        self.probing_sequences = probing_sequences
        self.probing_length = probing_length
        self.probing_static_weight = probing_static_weight
        self.training = training or {}
        super().__init__(**kwargs)

    @classmethod
    def for_zoo(cls, encoder: str, kind: ZooKind, probing_sequences: int = 1, probing_length: int | None = None,
                **kwargs: Any) -> RNNEncoderConfig:
        """The config of an encoder for the RNNs of a zoo; the probing length defaults to the zoo's (the paper's config)."""
        return cls(encoder=encoder, zoo=kind.name, rnn_architecture=kind.architecture.to_dict(), token_vocab=kind.token_vocab,
                   probing_sequences=probing_sequences, probing_length=probing_length or kind.probing_length, **kwargs)

    @property
    def shape(self) -> EncoderShape:
        """The encoder's view of the RNNs and its probing options."""
        return EncoderShape(LSTMArchitecture(**self.rnn_architecture), self.token_vocab, self.embedding_dim,
                            self.probing_sequences, self.probing_length, self.probing_static_weight)


class EmulatorConfig(PretrainedConfig):
    """The emulator: an LSTM that reproduces an RNN's outputs given that RNN's embedding."""

    model_type = "rnn_zoos_emulator"

    def __init__(
        self,
        zoo: str | None = None,
        input_size: int = 6,
        output_size: int = 6,
        embedding_dim: int = 16,
        hidden_size: int = 256,
        num_layers: int = 2,
        training: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.zoo = zoo
        self.input_size = input_size
        self.output_size = output_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.training = training or {}
        super().__init__(**kwargs)

    @classmethod
    def for_zoo(cls, kind: ZooKind, **kwargs: Any) -> EmulatorConfig:
        """The config of an emulator of a zoo's RNNs."""
        arch = kind.architecture
        return cls(zoo=kind.name, input_size=arch.input_size, output_size=arch.output_size, **kwargs)


LOADER_FILE = "rnn_zoos_model.py"
"""The loader saved beside every model; ``config.json``'s ``auto_map`` names its classes."""
LOADER = '''"""This is an rnn-zoos model: the rnn-zoos library loads it ({install}).

After `import rnn_zoos`, `transformers.AutoModel.from_pretrained` loads it without this file; with
`trust_remote_code=True` this file does no more than import the installed library.
"""

try:
    from rnn_zoos.models.modeling import EmulatorConfig, EmulatorModel, RNNEncoderConfig, RNNEncoderModel  # noqa: F401
except ImportError as error:
    raise ImportError({message!r}) from error
'''


@dataclass
class RNNEncoderOutput(ModelOutput):
    """What an encoder returns: ``embeddings`` ``[M, embedding_dim]``, one per RNN."""

    embeddings: torch.FloatTensor | None = None


@dataclass
class EmulatorOutput(ModelOutput):
    """What the emulator returns: ``logits`` ``[N, T, output_size]``, and the LSTM ``state`` to continue from."""

    logits: torch.FloatTensor | None = None
    state: tuple[torch.Tensor, torch.Tensor] | None = None


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence ``transformers``' progress bars ("Writing model shards", "Loading weights") inside the block."""
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


class _CardMixin:
    """Writes a model card next to the weights on ``save_pretrained``, and pushes exactly what it saved."""

    config: RNNEncoderConfig | EmulatorConfig

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        name = type(self).__name__
        loader = LOADER_FILE.removesuffix(".py")
        self.config.auto_map = {"AutoConfig": f"{loader}.{self.config_class.__name__}", "AutoModel": f"{loader}.{name}"}
        with quiet_transformers():
            result = super().save_pretrained(save_directory, *args, **kwargs)  # type: ignore[misc]
        message = f"this is an rnn-zoos model, which the rnn-zoos library loads: {install_command()}, then `import rnn_zoos`"
        (Path(save_directory) / LOADER_FILE).write_text(LOADER.format(install=install_command(), message=message))
        self.model_card().save(Path(save_directory) / "README.md")
        ordinary_permissions(Path(save_directory))
        return result

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        with quiet_transformers():
            return super().from_pretrained(*args, **kwargs)  # type: ignore[misc]

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, private: bool | None = None,
                    token: str | bool | None = None, revision: str | None = None, create_pr: bool = False,
                    **kwargs: Any) -> Any:
        """Create the repo if needed and upload what :meth:`save_pretrained` writes, our model card included."""
        api = HfApi(token=token if isinstance(token, str) else None)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, **kwargs)
            return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, create_pr=create_pr,
                                     commit_message=commit_message or f"Upload {type(self).__name__}")

    def model_card(self) -> ModelCard:
        """A model card from the config: what the model is, which zoo (``datasets`` if it is a Hub repo), the training
        figures (``model-index``), how to install the library and load the model, and the training record."""
        config = self.config
        encoder = isinstance(config, RNNEncoderConfig)
        what = f"`{config.encoder}` RNN weight encoder" if encoder else "emulator (LSTM conditioned on an RNN embedding)"
        load = "import rnn_zoos  # registers the model with transformers' Auto classes\n"
        code = ""
        if encoder and config.encoder not in ENCODERS:
            code = (f"## Code\n\nThe encoder `{config.encoder}` is code from the package `{config.encoder_package}`, not part of "
                    "rnn-zoos, which never imports code because a saved model names it. Install that package first")
            if is_code_reference(config.encoder):
                code += " (or put it on `PYTHONPATH`) and name the encoder before loading, as below.\n\n"
                load += f"rnn_zoos.models.register_encoder({config.encoder!r})  # imports it: runs that package's code\n"
            else:
                code += ": it declares the encoder as an installed one, and the model then loads as it is.\n\n"
        record = config.training
        zoo = str(record.get("zoo", ""))
        hub_zoo = zoo if zoo and is_repo_id(zoo) and not looks_like_path(zoo) and not os.path.isdir(zoo) else None
        figures = [EvalResult(task_type="other", task_name="emulation of RNNs", dataset_type=hub_zoo or config.zoo or "rnn-zoos zoo",
                              dataset_name=f"{config.zoo} zoo, {split} split", dataset_split=split,
                              metric_type=str(record.get("emulation_loss", "emulation_loss")),
                              metric_name=f"{split} emulation loss", metric_value=record[f"{split}_loss"])
                   for split in ("validation", "ood") if isinstance(record.get(f"{split}_loss"), (int, float))]
        data = ModelCardData(library_name="rnn-zoos", license="cc-by-4.0", datasets=[hub_zoo] if hub_zoo else None,
                             tags=["rnn-zoos", "weight-space-learning", config.zoo, f"arxiv:{PAPER_ARXIV}"],
                             model_name=f"rnn-zoos {config.encoder if encoder else 'emulator'} ({config.zoo})",
                             eval_results=figures or None)
        call = ("embeddings = model(params).embeddings   # params: {name: [M, ...]}, as rnn_zoos.collate_rows(rows)['weights']"
                if encoder else "logits = model(inputs, embeddings).logits   # inputs [N, T, input_size], embeddings [N, D]")
        body = (
            f"# rnn-zoos {what}\n\n"
            f"Pretrained by emulation on the `{config.zoo}` zoo with `rnn-zoos pretrain`, following *Learning Useful "
            f"Representations of Recurrent Neural Network Weight Matrices* (Herrmann, Faccio, Schmidhuber, ICML 2024; "
            f"[arXiv:{PAPER_ARXIV}](https://arxiv.org/abs/{PAPER_ARXIV})). Code: {code_url()}.\n\n"
            f"## Use\n\nThe rnn-zoos library loads it:\n\n```bash\n{install_command()}\n```\n\n"
            f"{code}```python\n{load}"
            "from transformers import AutoModel\n"
            f"model = AutoModel.from_pretrained(PATH_OR_HUB_ID)\n{call}\n```\n\n"
            f"## Training record\n\n```json\n{json.dumps(record, indent=2, sort_keys=True)}\n```\n"
        )
        return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


class RNNEncoderModel(_CardMixin, PreTrainedModel):
    """A weight encoder: batched LSTM parameters ``{name: [M, ...]}`` to embeddings ``[M, embedding_dim]``."""

    config_class = RNNEncoderConfig
    base_model_prefix = "rnn_encoder"

    def __init__(self, config: RNNEncoderConfig) -> None:
        super().__init__(config)
        source = known_encoder(config.encoder)  # never imports code because the config names it
        shape = config.shape
        self.architecture = shape.architecture
        self.encoder = source.build(shape, config.encoder_config)
        config.encoder, config.encoder_package = source.reference, source.package
        self.post_init()

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> Any:
        """Save the model; an encoder that is itself a ``PreTrainedModel`` has its config saved inside ours."""
        if isinstance(self.encoder, PreTrainedModel):
            self.config.encoder_config = self.encoder.config.to_dict()
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        """Keep PyTorch's default initialisation of every layer."""

    @property
    def needs_augmentation(self) -> bool:
        """Whether training should show it randomly permuted RNNs (the encoder says it is not invariant)."""
        return bool(getattr(self.encoder, "needs_augmentation", False))

    def forward(self, params: Params | LSTMWeights) -> RNNEncoderOutput:
        """The embeddings ``[M, embedding_dim]`` of M RNNs, given as their ``{name: [M, ...]}`` dict or typed; the encoder
        receives them typed (:class:`LSTMWeights`)."""
        return RNNEncoderOutput(embeddings=self.encoder(as_weights(params, self.architecture)))


class EmulatorModel(_CardMixin, PreTrainedModel):
    """A 2-layer LSTM that, given an RNN's unit-normalised embedding, reproduces that RNN's outputs.

    The embedding enters through a linear projection added to the first input of the sequence.
    """

    config_class = EmulatorConfig
    base_model_prefix = "emulator"

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.read = nn.Linear(config.input_size, config.hidden_size)
        self.condition = nn.Linear(config.embedding_dim, config.hidden_size)
        self.lstm = nn.LSTM(config.hidden_size, config.hidden_size, config.num_layers, batch_first=True)
        self.head = nn.Linear(config.hidden_size, config.output_size)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Keep PyTorch's default initialisation of every layer."""

    def forward(self, inputs: torch.Tensor, embedding: torch.Tensor, state: Any = None, first: bool = True) -> EmulatorOutput:
        """Logits ``[N, T, output_size]`` for inputs ``[N, T, input_size]`` of N sequences, each with its RNN's embedding
        ``[N, D]``, and the LSTM state after them.

        ``state``/``first`` continue a sequence step by step (the embedding enters only at its first input).
        """
        read = self.read(inputs)
        if first:
            conditioned = read[:, :1] + self.condition(nn.functional.normalize(embedding, dim=-1)).unsqueeze(1)
            read = torch.cat([conditioned, read[:, 1:]], dim=1)
        hidden, state = self.lstm(read, state)
        return EmulatorOutput(logits=self.head(hidden), state=state)


AutoConfig.register(RNNEncoderConfig.model_type, RNNEncoderConfig, exist_ok=True)
AutoConfig.register(EmulatorConfig.model_type, EmulatorConfig, exist_ok=True)
AutoModel.register(RNNEncoderConfig, RNNEncoderModel, exist_ok=True)
AutoModel.register(EmulatorConfig, EmulatorModel, exist_ok=True)
