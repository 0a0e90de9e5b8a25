"""The 216 relative-occurrence languages: training strings, the acceptance check, the split criterion."""

import random

import pytest
import torch

from rnn_zoos.zoos import formal_lang as fl


def reference_accepts(string: list[int], task: list[int]) -> bool:
    """Plain-Python acceptance: EOS present; letters in order before it; counts n, n+m_b, n+m_c, n+m_d."""
    body = string[1:]
    if fl.EOS not in body:
        return False
    prefix = body[: body.index(fl.EOS)]
    if any(token >= 4 for token in prefix) or prefix != sorted(prefix):
        return False
    counts = [prefix.count(letter) for letter in range(4)]
    n = counts[0]
    return all(counts[k] == n + task[k] for k in range(4))


def test_there_are_216_tasks() -> None:
    assert fl.TASKS.shape == (216, 4)
    assert (fl.TASKS[:, 0] == 0).all()
    assert len({tuple(t) for t in fl.TASKS.tolist()}) == 216
    assert fl.TASKS[:, 1:].min() == -3 and fl.TASKS[:, 1:].max() == 2


def test_training_strings_are_in_their_language() -> None:
    uniforms = torch.rand(216, 50)
    strings = fl.training_strings(fl.TASKS, uniforms)
    assert strings.shape == (216, 50, 42)
    assert (strings[..., 0] == fl.BOS).all()
    accepted = fl.accepts(strings, fl.TASKS.unsqueeze(1))
    long_tasks = fl.TASKS[:, 1:].sum(-1) >= 5
    assert accepted[~long_tasks].all()
    # n = 9 strings of the 4 longest tasks are cut before their EOS, all others are complete
    n = strings[..., 1:].eq(fl.A).sum(-1)
    assert torch.equal(~accepted, long_tasks.unsqueeze(1) & (n == 9))
    assert int(long_tasks.sum()) == 4


def test_n_covers_its_range() -> None:
    task = torch.tensor([[0, -3, 1, 0]])
    strings = fl.training_strings(task, torch.linspace(0, 0.9999, 200).view(1, 200))
    n = strings[0, :, 1:].eq(fl.A).sum(-1)
    assert sorted(set(n.tolist())) == list(range(3, 10))


def test_a_known_string() -> None:
    string = fl.strings_for(torch.tensor([0, 1, -1, 0]), torch.tensor(2), length=12)
    assert string.tolist() == [fl.BOS, 0, 0, 1, 1, 1, 2, 3, 3, fl.EOS, fl.EOS, fl.EOS]


@pytest.mark.parametrize(
    "body, expected",
    [
        ([0, 1, 1, 1, 2, 3, 3, 5], True),  # n=1 for task [0, 2, 0, 1]
        ([0, 1, 1, 1, 2, 3, 3], False),  # no EOS
        ([0, 1, 1, 2, 1, 3, 3, 5], False),  # out of order
        ([0, 1, 1, 1, 2, 3, 5], False),  # wrong count
        ([0, 1, 1, 1, 2, 3, 3, 4, 5], False),  # BOS inside
        ([0, 1, 1, 1, 2, 3, 3, 5, 0, 1], True),  # tokens after the first EOS do not matter
    ],
)
def test_accepts_examples(body, expected) -> None:
    task = torch.tensor([0, 2, 0, 1])
    string = torch.tensor([fl.BOS, *body])
    assert bool(fl.accepts(string, task)) is expected
    assert reference_accepts(string.tolist(), task.tolist()) is expected


def test_accepts_matches_reference_on_random_and_mutated_strings() -> None:
    rng = random.Random(0)
    tasks, strings = [], []
    for _ in range(3000):
        task = fl.TASKS[rng.randrange(216)]
        n = rng.randrange(0, 11)
        base = fl.strings_for(task, torch.tensor(max(n, int(fl.n_min(task)))), length=20).tolist()
        mutation = rng.random()
        if mutation < 0.3:
            base[rng.randrange(1, 20)] = rng.randrange(6)
        elif mutation < 0.5:
            position = rng.randrange(1, 19)
            base[position], base[position + 1] = base[position + 1], base[position]
        elif mutation < 0.6:
            base = [fl.BOS] + [rng.randrange(6) for _ in range(19)]
        tasks.append(task.tolist())
        strings.append(base)
    got = fl.accepts(torch.tensor(strings), torch.tensor(tasks)).tolist()
    expected = [reference_accepts(s, t) for s, t in zip(strings, tasks)]
    assert got == expected
    assert 0.2 < sum(expected) / len(expected) < 0.8  # both outcomes well represented


def test_task_entropy() -> None:
    import numpy as np

    assert np.isclose(fl.task_entropy(np.array([[0, 0, 0, 0]]))[0], -np.log(0.25 + 1e-6))
    entropies = fl.task_entropy(fl.TASKS.numpy())
    assert entropies.dtype == np.float64  # float32 / int64 promotes, as in the paper's expression
    assert entropies.argmax() == fl.TASKS.tolist().index([0, 0, 0, 0])
    p = np.array([4.0, 1.0, 6.0, 2.0]) / 13  # [0, -3, 2, -2] shifted by 4
    assert np.isclose(fl.task_entropy(np.array([[0, -3, 2, -2]]))[0], -(p * np.log(p + 1e-6)).sum())


def test_sample_strings_follows_the_probabilities() -> None:
    from rnn_zoos.lstm.functional import LSTMArchitecture, LSTMWithHead, stack_params
    from rnn_zoos.zoos import rnn_model

    torch.manual_seed(0)
    module = LSTMWithHead(LSTMArchitecture(6, 8, 2, 6))
    params = stack_params([{k: v.detach() for k, v in module.state_dict().items()}])
    strings = fl.sample_strings(rnn_model(params), torch.rand(1, 4000, 3))
    assert (strings[..., 0] == fl.BOS).all()
    first = torch.bincount(strings[0, :, 1], minlength=6).float() / 4000
    expected = module.log_probs(torch.tensor([[fl.BOS]]))[0, 0].exp()
    assert (first - expected).abs().max() < 0.03
