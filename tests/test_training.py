"""The paper's schedule, scaled snapshot steps, initialisation and the per-run batched AdamW."""

import torch

from rnn_zoos.lstm.functional import LSTMArchitecture
from rnn_zoos.lstm.streams import run_seeds
from rnn_zoos.lstm.training import PAPER_SNAPSHOT_STEPS, BatchedAdamW, TrainingSchedule, initial_params


def test_paper_schedule() -> None:
    schedule = TrainingSchedule()
    assert schedule.snapshot_steps() == list(PAPER_SNAPSHOT_STEPS) and schedule.updates == 20_001
    assert schedule.learning_rate(0) == schedule.learning_rate(1) == 0.01  # the rate set before the loop, then schedule(0)
    assert abs(schedule.learning_rate(10_001) - 0.003) < 1e-12
    assert abs(schedule.learning_rate(5_001) - 0.0065) < 1e-12
    assert abs(schedule.learning_rate(20_000) - 0.0003) < 1e-6 and schedule.learning_rate(20_000) > 0.0003


def test_scaled_schedule() -> None:
    # round(s * 300 / 20000) with halves rounded up: 1.5 -> 2, 7.5 -> 8
    assert TrainingSchedule(steps=300).snapshot_steps() == [0, 2, 3, 8, 15, 30, 75, 150, 300]
    assert TrainingSchedule(steps=10).snapshot_steps() == [0, 1, 3, 5, 10]  # 0.05..0.5 -> 0 or 1, 2.5 -> 3; duplicates dropped
    assert TrainingSchedule(steps=1).snapshot_steps() == [0, 1]
    assert abs(TrainingSchedule(steps=300).learning_rate(151) - 0.003) < 1e-12
    assert TrainingSchedule(steps=300).breakpoints() == ((0, 0.01), (150, 0.003), (300, 0.0003))
    assert TrainingSchedule(steps=1).breakpoints() == ((0, 0.01), (1, 0.003), (1, 0.0003))  # 0.5 rounds up


def test_initialisation_is_pytorchs_range_and_per_run() -> None:
    arch = LSTMArchitecture(6, 32, 2, 6)
    seeds = torch.tensor(run_seeds(0, range(4)))
    params = initial_params(arch, seeds)
    bound = 32**-0.5
    for name, shape in arch.parameter_shapes().items():
        assert params[name].shape == (4, *shape)
        assert params[name].abs().max() <= bound
    assert params["lstm.weight_hh_l0"].std().item() > 0.9 * bound / 3**0.5
    alone = initial_params(arch, seeds[2:3])
    assert all(torch.equal(alone[name][0], params[name][2]) for name in params)
    assert not torch.equal(params["head.bias"][0], params["head.bias"][1])


def test_batched_adamw_equals_one_adamw_per_run() -> None:
    torch.manual_seed(0)
    decays = torch.tensor([0.0, 0.001, 0.01, 0.1])
    start = {"w": torch.randn(4, 3, 5), "b": torch.randn(4, 3)}
    batched = {name: tensor.clone().requires_grad_() for name, tensor in start.items()}
    optimizer = BatchedAdamW(batched, decays)
    singles = [{name: tensor[index].clone().requires_grad_() for name, tensor in start.items()} for index in range(4)]
    references = [torch.optim.AdamW(list(p.values()), lr=0.01, weight_decay=float(decays[i])) for i, p in enumerate(singles)]
    targets = torch.randn(4, 3)
    for step, lr in enumerate([0.01, 0.005, 0.002]):
        ((batched["w"].sum(-1) * batched["b"] - targets) ** 2).sum().backward()
        optimizer.step(lr)
        for index, (params, reference) in enumerate(zip(singles, references)):
            ((params["w"].sum(-1) * params["b"] - targets[index]) ** 2).sum().backward()
            for group in reference.param_groups:
                group["lr"] = lr
            reference.step()
            reference.zero_grad()
    for index, params in enumerate(singles):
        for name in params:
            torch.testing.assert_close(batched[name][index], params[name], rtol=1e-6, atol=1e-7)
