"""The relative-occurrence languages of the formal-language zoo: a^n b^(n+m_b) c^(n+m_c) d^(n+m_d).

A task is the vector ``[0, m_b, m_c, m_d]`` with each m in {-3, ..., 2}: 216 languages. Tokens are
``a b c d BOS EOS`` = 0..5. A training string is ``BOS``, the letters, then ``EOS`` padding, cut to
:data:`SEQUENCE_LENGTH` tokens; n is uniform in ``[max(0, -min m), N_STOP)``. For the 4 tasks with
``m_b + m_c + m_d >= 5`` the longest strings (n = 9) do not fit with their ``EOS`` and are cut.

Everything here works on batches of tensors (any leading dimensions), on any device.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


A, B, C, D, BOS, EOS = range(6)
VOCAB_SIZE = 6
LETTERS = 4
SEQUENCE_LENGTH = 42
"""Tokens per string, ``BOS`` included: a model reads 41 and predicts 41."""
N_STOP = 10
"""n is drawn from ``[n_min, N_STOP)``."""
OFFSETS = tuple(range(-3, 3))

TASKS = torch.tensor([(0, *m) for m in itertools.product(OFFSETS, repeat=3)], dtype=torch.int64)
"""All 216 tasks ``[0, m_b, m_c, m_d]``, in lexicographic order."""


def n_min(tasks: torch.Tensor) -> torch.Tensor:
    """Smallest n of each task, ``max(0, -min m)``: every letter count is then non-negative."""
    return (-tasks.min(dim=-1).values).clamp(min=0)


def strings_for(tasks: torch.Tensor, n: torch.Tensor, length: int = SEQUENCE_LENGTH) -> torch.Tensor:
    """Token strings ``[..., length]`` (BOS, letters, EOS padding) for tasks ``[..., 4]`` and counts n ``[...]``."""
    counts = n.unsqueeze(-1) + tasks  # [..., 4] letters a, b, c, d
    ends = counts.cumsum(dim=-1)  # position (after BOS) where each letter block ends
    position = torch.arange(length - 1, device=tasks.device)
    letter = (position >= ends.unsqueeze(-1)).sum(dim=-2)  # [..., length - 1]: 0..3 letters, 4 = past the end
    body = torch.where(letter == LETTERS, EOS, letter)
    bos = torch.full((*body.shape[:-1], 1), BOS, dtype=body.dtype, device=body.device)
    return torch.cat([bos, body], dim=-1)


def training_strings(tasks: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Training strings from uniform numbers: ``uniforms [..., S]`` pick n for ``tasks [..., 4]`` -> ``[..., S, 42]``."""
    low = n_min(tasks).unsqueeze(-1)
    n = low + torch.floor(uniforms * (N_STOP - low)).long()
    return strings_for(tasks.unsqueeze(-2).expand(*n.shape, -1), n)


def accepts(strings: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
    """Which strings ``[..., L]`` (BOS first) belong to the language of their task ``[..., 4]``.

    A string counts only if it contains ``EOS``; before the first ``EOS`` it must hold letters only,
    in order (all a, then b, c, d), with counts ``n, n + m_b, n + m_c, n + m_d`` for one n >= 0.
    """
    body = strings[..., 1:]
    is_eos = body == EOS
    has_eos = is_eos.any(dim=-1)
    first_eos = torch.where(has_eos, is_eos.long().argmax(dim=-1), body.shape[-1])
    position = torch.arange(body.shape[-1], device=body.device)
    in_prefix = position < first_eos.unsqueeze(-1)
    letters_only = ((body < LETTERS) | ~in_prefix).all(dim=-1)
    ordered = ((body[..., 1:] >= body[..., :-1]) | ~in_prefix[..., 1:]).all(dim=-1)
    counts = torch.stack([((body == letter) & in_prefix).sum(dim=-1) for letter in range(LETTERS)], dim=-1)
    fits = (counts - tasks == counts[..., :1]).all(dim=-1)
    return has_eos & letters_only & ordered & fits


def release_accepts(strings: torch.Tensor, tasks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's own acceptance check (``RelativeOccurrenceLanguage.accept_sequence``): (correct, finished).

    A string is finished if it contains ``EOS``; it is correct if, counting the letters up to its first
    ``EOS`` in any order (other tokens ignored), the counts are ``n, n + m_b, n + m_c, n + m_d`` for some n.
    Unlike :func:`accepts` it does not check the order of the letters. The paper's release counts its
    accuracy with it, and its evaluation of cloned RNNs scores correct strings among the finished ones.
    """
    is_eos = strings == EOS
    finished = is_eos.any(dim=-1)
    first_eos = is_eos.long().argmax(dim=-1)
    upto = torch.arange(strings.shape[-1], device=strings.device) <= first_eos.unsqueeze(-1)
    counts = torch.stack([((strings == letter) & upto).sum(dim=-1) for letter in range(LETTERS)], dim=-1)
    adjusted = counts - tasks
    return (adjusted == adjusted[..., :1]).all(dim=-1) & finished, finished


def task_entropy(tasks: np.ndarray) -> np.ndarray:
    """The split criterion of task vectors ``[U, 4]`` -> ``[U]``, as the paper's ``task_entropy_criterion``.

    The entropy of the shifted task vector ``t - min t + 1`` normalised to sum 1, with the paper's
    epsilon: ``-sum p log(p + 1e-6)``, in float64 as NumPy promotes the paper's expression. Many tasks
    tie in exact arithmetic, so the last bit of each logarithm decides their order: the logarithm is
    the C library's (``math.log``), which NumPy 1.23 used on CPUs without AVX-512 and NumPy >= 2 uses
    everywhere (NumPy 1.23 on AVX-512 CPUs used SVML, which differs in the last bit for some values).
    """
    tasks = np.asarray(tasks, dtype=np.int64)
    shifted = 1 + tasks - tasks.min(axis=-1, keepdims=True)
    p = shifted.astype(np.float32) / shifted.sum(axis=-1, keepdims=True)
    log = np.array([math.log(value) for value in (p + 1e-6).ravel().tolist()], dtype=np.float64).reshape(p.shape)
    return -(p * log).sum(axis=-1)


def one_hot(tokens: torch.Tensor) -> torch.Tensor:
    """Token ids ``[...]`` as float32 one-hot vectors ``[..., 6]``: how the zoo's RNNs read strings."""
    return torch.nn.functional.one_hot(tokens.long(), VOCAB_SIZE).float()


StepFunction = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
"""One step of M generative models: one-hot tokens ``[M, S, 6]`` and a state -> logits ``[M, S, 6]`` and the new state."""


def sample_strings(step: StepFunction, uniforms: torch.Tensor) -> torch.Tensor:
    """Sample strings autoregressively from M models, starting from ``BOS``.

    Args:
        step: advances the models by one token (for RNN weights: ``lambda x, s: lstm_step(params, x, s)``);
            it receives ``None`` as the state of the first step.
        uniforms: ``[M, S, 41]`` numbers in [0, 1); position t of string s takes the first token whose
            cumulative probability exceeds ``uniforms[m, s, t]`` (inverse-CDF sampling).

    Returns:
        Strings ``[M, S, 42]`` (int64), ``BOS`` first.
    """
    models, count, length = uniforms.shape
    token = torch.full((models, count), BOS, dtype=torch.int64, device=uniforms.device)
    strings, state = [token], None
    for position in range(length):
        logits, state = step(one_hot(token), state)
        cumulative = torch.softmax(logits, dim=-1).cumsum(dim=-1)
        token = (cumulative < uniforms[..., position : position + 1]).sum(dim=-1).clamp(max=VOCAB_SIZE - 1)
        strings.append(token)
    return torch.stack(strings, dim=-1)
