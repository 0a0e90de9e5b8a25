"""Write ``official_conventions.json`` and ``official_conventions.safetensors``: values computed with the logic of the
paper's official code, which the tests hold rnn-zoos' builders and evaluation to (``tests/test_official_conventions.py``).

    .venv/bin/python tests/data/make_official_conventions.py

What is computed here follows the official files, written out anew with plain torch (``nn.LSTM``,
``torch.optim.AdamW``, ``F.cross_entropy``, ``torch.distributions.Categorical``), not with rnn-zoos' code:

- ``modules_rnn_models.PiecewiseLinearSchedule`` and the builders' loop ``for step in range(20_001)``: update,
  set the next rate from ``lr_schedule(step)``, then record if ``step`` is a snapshot step. A formal-language run
  and a sequential-MNIST run are trained so, over a few steps; their weights at two snapshots are saved.
  ``dataset_creation_sequential_mnist.py`` draws epochs of shuffled batches of 32 (``DataLoader(shuffle=True)``,
  a smaller last batch) and measures each snapshot with ``evaluate_model`` (batches of 1000, at most 13, the mean
  of the batch losses); both are followed here on 300 synthetic images (:func:`tiny_mnist`).
- ``RelativeOccurrenceLanguage.accept_sequence``: strings with their letters out of order.
- ``utilities.hash64``: the split of the 60,000 MNIST training indices.
- ``training_script.training_iteration``: the target distribution ``Categorical(logits=logits).probs`` of stored
  float16 log-probabilities and the total-variation loss against it.

rnn-zoos is imported only for what is rnn-zoos' own by design: the random numbers (initial weights, tasks, the
training data of each step, the order of each epoch and of each evaluation, from its counter-based streams) and the
PIL-exact rotation of the images.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from rnn_zoos.lstm.functional import LSTMArchitecture
from rnn_zoos.lstm.streams import run_seeds, stream_uniform
from rnn_zoos.lstm.training import initial_params
from rnn_zoos.zoos import formal_lang as fl
from rnn_zoos.zoos import mnist_task as task, seq_mnist as sm
from rnn_zoos.zoos.mnist_sources import MnistImages

HERE = Path(__file__).parent
PAPER_SNAPSHOTS = [0, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000]
FORMAL = {"seed": 5, "steps": 10}
MNIST = {"seed": 2, "steps": 20}


def tiny_mnist() -> tuple[np.ndarray, np.ndarray]:
    """300 synthetic 28x28 images (uint8) and labels: 238 training images by the official hash, 8 batches an epoch."""
    state = np.random.RandomState(18)
    return state.randint(0, 256, (300, 28, 28)).astype(np.uint8), state.randint(0, 10, 300).astype(np.int64)


def scaled_snapshots(steps: int) -> list[int]:
    """The paper's snapshot steps scaled to ``steps`` as a build with ``--steps`` scales them (halves rounded up)."""
    return sorted({(2 * s * steps + 20_000) // 40_000 for s in PAPER_SNAPSHOTS})


class Schedule:
    """``PiecewiseLinearSchedule(timesteps, values)``: the value of the first segment whose end lies beyond ``t``."""

    def __init__(self, timesteps, values):
        self.timesteps, self.values = timesteps, values

    def __call__(self, t):
        for i, timestep in enumerate(self.timesteps):
            if t < timestep:
                if i == 0:
                    return self.values[0]
                v1, v2, t1, t2 = self.values[i - 1], self.values[i], self.timesteps[i - 1], self.timesteps[i]
                return v1 + (v2 - v1) * (t - t1) / (t2 - t1)
        return self.values[-1]


def schedule_for(steps: int) -> Schedule:
    """The builders' schedule, ``timesteps=[snapshot_steps[0], [-2], [-1]]``, with the paper's snapshot steps scaled
    to ``steps`` (the middle one is the paper's 10,000 scaled, as every snapshot step is)."""
    middle = (2 * 10_000 * steps + 20_000) // 40_000
    return Schedule([0, middle, steps], [0.01, 0.003, 0.0003])


def official_loop(module: torch.nn.Module, weight_decay: float, steps: int, loss_of_step) -> tuple[dict, list[float]]:
    """The builders' loop: returns the weights at every (scaled) snapshot step and the rate each update used."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.01, weight_decay=weight_decay)
    schedule = schedule_for(steps)
    for group in optimizer.param_groups:
        group["lr"] = schedule(0)
    snapshots, rates = {}, []
    for step in range(steps + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        loss = loss_of_step(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        if step in scaled_snapshots(steps):
            snapshots[step] = {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}
    return snapshots, rates


def loop_rates(steps: int) -> list[float]:
    """The learning rate of each update of the official loop over ``steps`` (a one-parameter model stands in)."""
    model = torch.nn.Linear(1, 1)
    return official_loop(model, 0.0, steps, lambda step: model(torch.ones(1)).sum())[1]


class RNN(torch.nn.Module):
    """``RNNFast``: ``nn.LSTM(batch_first=True)`` then ``nn.Linear``, named as rnn-zoos' blobs name them."""

    def __init__(self, architecture: LSTMArchitecture, params: dict[str, torch.Tensor]):
        super().__init__()
        self.lstm = torch.nn.LSTM(architecture.input_size, architecture.hidden_size, architecture.num_layers, batch_first=True)
        self.head = torch.nn.Linear(architecture.hidden_size, architecture.output_size)
        self.load_state_dict({name: tensor[0] for name, tensor in params.items()})

    def forward(self, inputs):
        return self.head(self.lstm(inputs)[0])


def formal_run() -> tuple[dict, dict]:
    """One formal-language run of the tiny build ``FORMAL`` (its run 0), trained by the official loop."""
    kind = fl.FORMAL_LANG
    seeds = torch.tensor(run_seeds(FORMAL["seed"], [0]))
    task = fl.FormalLangRecipe(kind).setup(seeds)["task"]
    rnn = RNN(kind.architecture, initial_params(kind.architecture, seeds))

    def loss(step):
        strings = fl.training_strings(task, stream_uniform(seeds, (fl.STREAM_DATA, step), (32,)))[0]
        output = rnn(F.one_hot(strings[:, :-1], 6).float())
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), strings[:, 1:].reshape(-1))

    snapshots, rates = official_loop(rnn, 1e-4, FORMAL["steps"], loss)
    return snapshots, {"rates": rates, "task": task[0].tolist()}


def evaluate_model(rnn, images, labels, order, angle):
    """``evaluate_model``: batches of 1000 of ``order``, at most 13; mean of the batch losses, accuracy, first 100 saved."""
    losses, correct, total = [], 0, 0
    with torch.no_grad():
        for batch_idx, start in enumerate(range(0, len(order), 1000)):
            batch = order[start : start + 1000]
            output = rnn(task.model_inputs(images[batch].unsqueeze(0), angle.view(1))[0])
            target = labels[batch]
            losses.append(F.cross_entropy(output.reshape(-1, 10), target.unsqueeze(1).repeat(1, output.shape[1]).flatten()).item())
            correct += (output[:, -1].argmax(dim=1) == target).sum().item()
            total += len(target)
            if batch_idx >= 12:
                break
    return float(np.mean(losses)), correct / total, order[:100].tolist()


def mnist_run() -> tuple[dict, dict]:
    """One sequential-MNIST run of the tiny build ``MNIST`` on :func:`tiny_mnist` (its run 0), trained by the official
    loop over epochs of shuffled batches, and the official measures of two snapshots."""
    kind = sm.SEQ_MNIST
    images, labels = (torch.from_numpy(array) for array in tiny_mnist())
    recipe = sm.SeqMnistRecipe(kind, MnistImages(images, labels, "tiny"))
    indices = torch.arange(len(labels))
    hashed = torch.bitwise_xor(indices ^ 0x58A849AF6CBF585A, 0x5CA118CB4D828A5E)
    train_indices, eval_indices = indices[hashed % 10 < 8], indices[hashed % 10 >= 8]
    seeds = torch.tensor(run_seeds(MNIST["seed"], [0]))
    runs = recipe.setup(seeds)
    angle, weight_decay = runs["task"][0], float(runs["weight_decay"][0])
    pixels = images.float() / 255
    rnn = RNN(kind.architecture, initial_params(kind.architecture, seeds))
    per_epoch = -(-len(train_indices) // 32)

    def loss(step):
        epoch, position = divmod(step, per_epoch)
        order = recipe.shuffled(train_indices, seeds, (sm.STREAM_DATA, epoch))[0]  # the epoch's shuffle: rnn-zoos' stream
        batch = order[position * 32 : (position + 1) * 32]
        output = rnn(task.model_inputs(pixels[batch].unsqueeze(0), angle.view(1))[0])
        target = labels[batch].unsqueeze(1).repeat(1, output.shape[1])
        return F.cross_entropy(output.view(-1, output.shape[-1]), target.flatten())

    snapshots, rates = official_loop(rnn, weight_decay, MNIST["steps"], loss)
    measured = {}
    for step in (0, MNIST["steps"]):
        rnn.load_state_dict(snapshots[step])
        train_order = recipe.shuffled(train_indices, seeds, (sm.STREAM_TRAIN_EVAL, step))[0]
        eval_order = recipe.shuffled(eval_indices, seeds, (sm.STREAM_VALIDATION_EVAL, step))[0]
        train_loss, _, recorded = evaluate_model(rnn, pixels, labels, train_order, angle)
        eval_loss, eval_accuracy, _ = evaluate_model(rnn, pixels, labels, eval_order, angle)
        measured[step] = {"train_loss": train_loss, "eval_loss": eval_loss, "eval_accuracy": eval_accuracy, "recorded": recorded}
    return snapshots, {"rates": rates, "angle": float(angle), "weight_decay": weight_decay, "batch_sizes":
                       [min(32, len(train_indices) - (step % per_epoch) * 32) for step in range(MNIST["steps"] + 1)],
                       "measured": measured}


def accept_sequence(sequences: torch.Tensor, differences: list[int]) -> tuple[list[bool], list[bool]]:
    """``RelativeOccurrenceLanguage.accept_sequence`` with 4 letters, on a copy: (correct, finished) per string."""
    sequences = sequences.clone()
    eos, letters = 5, len(differences)
    contains_eos = (sequences == eos).long().sum(dim=1) > 0
    first_eos_token = (sequences == eos).long().argmax(dim=1)
    sequences[torch.arange(sequences.shape[0]), first_eos_token] = eos
    counts = F.one_hot(sequences, 6).cumsum(dim=1)[:, :, :letters]
    counts_at_eos = torch.gather(counts, 1, first_eos_token[:, None, None].repeat(1, 1, letters)).squeeze(1)
    adjusted = counts_at_eos - torch.tensor(differences)[None]
    is_correct = ((adjusted[:, 0:1] == adjusted).long().sum(dim=1) == letters) & contains_eos
    return is_correct.tolist(), contains_eos.tolist()


def strings_out_of_order() -> dict:
    """Strings of the task [0, 1, -1, 0] (a^n b^(n+1) c^(n-1) d^n) in order, out of order, unfinished and wrong."""
    a, b, c, d, bos, eos = range(6)
    bodies = [
        [a, a, b, b, b, c, d, d],  # n = 2, in order
        [b, a, b, a, b, d, c, d],  # the same letters, shuffled
        [a, b, b, d],  # n = 1 in order (c^0)
        [d, b, a, b],  # n = 1, reversed
        [a, a, b, b, b, c, d, d, bos],  # a BOS before EOS: ignored by the count
        [a, b, b, d, d],  # one d too many
    ]
    strings = [[bos, *body] + [eos] * (41 - len(body)) for body in bodies]
    strings.append([bos] + [a, b, b, d] * 10 + [a])  # no EOS at all: unfinished
    task = [0, 1, -1, 0]
    correct, finished = accept_sequence(torch.tensor(strings), task)
    return {"task": task, "strings": strings, "correct": correct, "finished": finished}


def mnist_split() -> dict:
    """``utilities.hash64`` of the 60,000 training indices, ``% 10 < 8`` for training."""
    indices = torch.arange(60_000)
    hashed = torch.bitwise_xor(indices ^ torch.tensor(0x58A849AF6CBF585A), torch.tensor(0x5CA118CB4D828A5E))
    validation = indices[hashed % 10 >= 8]
    return {"validation_count": len(validation), "validation_first": validation[:20].tolist(),
            "validation_sha256": hashlib.sha256(validation.numpy().astype("<i8").tobytes()).hexdigest()}


def loss_target() -> dict:
    """``Categorical(logits=stored.float()).probs`` of float16 log-probs, and the total-variation loss against it."""
    generator = torch.Generator().manual_seed(18)
    stored = torch.log_softmax(3 * torch.randn(4, 7, 6, generator=generator), dim=-1).half()
    emulator = torch.randn(4, 7, 6, generator=generator)
    target = torch.distributions.Categorical(logits=stored.float().view(-1, 6)).probs
    emulated = torch.log_softmax(emulator, dim=-1).view(-1, 6)
    loss = (0.5 * (target - torch.exp(emulated)).abs().sum(-1)).view(4, -1).mean(-1).mean()
    return {"stored": stored.float().tolist(), "emulator_logits": emulator.tolist(), "target": target.view(4, 7, 6).tolist(),
            "total_variation": loss.item()}


def main() -> None:
    formal_weights, formal = formal_run()
    mnist_weights, mnist = mnist_run()
    tensors = {f"formal/{step}/{name}": tensor for step in (0, FORMAL["steps"]) for name, tensor in formal_weights[step].items()}
    tensors |= {f"mnist/{step}/{name}": tensor for step in (0, MNIST["steps"]) for name, tensor in mnist_weights[step].items()}
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, HERE / "official_conventions.safetensors")
    rates = {steps: loop_rates(steps) for steps in (1, 2, 3, 10, 300, 20_000)}
    golden = {
        "formal": {**FORMAL, **formal},
        "mnist": {**MNIST, **mnist},
        "learning_rates": {str(steps): values for steps, values in rates.items() if steps < 20_000},
        "paper_learning_rates": {str(step): rates[20_000][step] for step in (0, 1, 2, 5_001, 10_000, 10_001, 10_002, 15_000, 20_000)},
        "accept_sequence": strings_out_of_order(),
        "mnist_split": mnist_split(),
        "loss_target": loss_target(),
    }
    (HERE / "official_conventions.json").write_text(json.dumps(golden))


if __name__ == "__main__":
    main()
