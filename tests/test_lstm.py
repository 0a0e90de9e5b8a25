"""The batched functional LSTM equals torch.nn.LSTM + nn.Linear, for one and for many weight sets."""

import numpy as np
import pytest
import torch

from rnn_zoos.lstm.functional import LSTMArchitecture, LSTMWithHead, lstm_forward, lstm_step, stack_params, unstack_params

ARCH = LSTMArchitecture(input_size=5, hidden_size=7, num_layers=2, output_size=4)


def random_modules(count: int, arch: LSTMArchitecture = ARCH) -> list[LSTMWithHead]:
    torch.manual_seed(0)
    return [LSTMWithHead(arch).double() for _ in range(count)]


def batched(modules: list[LSTMWithHead]) -> dict[str, torch.Tensor]:
    return stack_params([{name: tensor.detach() for name, tensor in module.state_dict().items()} for module in modules])


@pytest.mark.parametrize("count", [1, 5])
def test_forward_equals_nn_lstm(count: int) -> None:
    modules = random_modules(count)
    inputs = torch.randn(count, 3, 11, ARCH.input_size, dtype=torch.float64)
    logits, (hidden, cell) = lstm_forward(batched(modules), inputs)
    for index, module in enumerate(modules):
        expected_hidden, (h_n, c_n) = module.lstm(inputs[index])
        torch.testing.assert_close(logits[index], module.head(expected_hidden))
        torch.testing.assert_close(hidden[:, index], h_n)
        torch.testing.assert_close(cell[:, index], c_n)


def test_three_layers_and_shared_inputs() -> None:
    arch = LSTMArchitecture(3, 6, 3, 2)
    modules = random_modules(4, arch)
    inputs = torch.randn(2, 9, 3, dtype=torch.float64)
    logits, _ = lstm_forward(batched(modules), inputs)
    for index, module in enumerate(modules):
        torch.testing.assert_close(logits[index], module(inputs))


def test_step_by_step_with_carried_state_equals_sequence() -> None:
    modules = random_modules(3)
    params = batched(modules)
    inputs = torch.randn(3, 2, 8, ARCH.input_size, dtype=torch.float64)
    whole, final = lstm_forward(params, inputs)
    state = None
    for step in range(8):
        logits, state = lstm_step(params, inputs[:, :, step], state)
        torch.testing.assert_close(logits, whole[:, :, step])
    torch.testing.assert_close(state, final)
    first, middle = lstm_forward(params, inputs[:, :, :5])
    rest, _ = lstm_forward(params, inputs[:, :, 5:], middle)
    torch.testing.assert_close(torch.cat([first, rest], dim=2), whole)


def test_gradients_match_nn_lstm() -> None:
    modules = random_modules(2)
    params = {name: tensor.clone().requires_grad_() for name, tensor in batched(modules).items()}
    inputs = torch.randn(2, 4, 6, ARCH.input_size, dtype=torch.float64)
    lstm_forward(params, inputs)[0].square().sum().backward()
    for index, module in enumerate(modules):
        module(inputs[index]).square().sum().backward()
        for name, tensor in module.named_parameters():
            torch.testing.assert_close(params[name].grad[index], tensor.grad)


def test_token_ids_are_one_hot_encoded() -> None:
    (module,) = random_modules(1)
    tokens = torch.randint(0, ARCH.input_size, (3, 6))
    one_hot = torch.nn.functional.one_hot(tokens, ARCH.input_size).double()
    torch.testing.assert_close(module(tokens), module(one_hot))
    torch.testing.assert_close(module.log_probs(tokens).exp().sum(-1), torch.ones(3, 6, dtype=torch.float64))


def test_architecture_shapes_and_unstack() -> None:
    assert ARCH.num_parameters == sum(p.numel() for p in LSTMWithHead(ARCH).parameters())
    assert LSTMArchitecture(6, 32, 2, 6).num_parameters == 13766  # the paper's formal-language LSTM
    assert LSTMArchitecture(16, 32, 2, 10).num_parameters == 15178  # and its sequential-MNIST LSTM
    params = batched(random_modules(3))
    for index, single in enumerate(unstack_params(params)):
        assert all(torch.equal(single[name], params[name][index]) for name in params)


def test_gradients_for_inputs_and_carried_state_match_nn_lstm() -> None:
    modules = random_modules(3)
    params = batched(modules)
    inputs = torch.randn(3, 2, 5, ARCH.input_size, dtype=torch.float64, requires_grad=True)
    hidden = torch.randn(2, 3, 2, ARCH.hidden_size, dtype=torch.float64, requires_grad=True)
    cell = torch.randn(2, 3, 2, ARCH.hidden_size, dtype=torch.float64, requires_grad=True)
    logits, (h_n, c_n) = lstm_forward(params, inputs, (hidden, cell))
    (logits.sin().sum() + h_n.square().sum() + c_n.cos().sum()).backward()
    for index, module in enumerate(modules):
        x = inputs.detach()[index].clone().requires_grad_()
        h0 = hidden.detach()[:, index].clone().requires_grad_()
        c0 = cell.detach()[:, index].clone().requires_grad_()
        out, (h, c) = module.lstm(x, (h0, c0))
        (module.head(out).sin().sum() + h.square().sum() + c.cos().sum()).backward()
        torch.testing.assert_close(inputs.grad[index], x.grad)
        torch.testing.assert_close(hidden.grad[:, index], h0.grad)
        torch.testing.assert_close(cell.grad[:, index], c0.grad)


def test_gradcheck_of_the_recurrence() -> None:
    modules = random_modules(2, LSTMArchitecture(3, 4, 2, 2))
    params = {name: tensor.clone().requires_grad_() for name, tensor in batched(modules).items()}
    inputs = torch.randn(2, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    names = list(params)

    def function(x, *tensors):
        return lstm_forward(dict(zip(names, tensors)), x)[0]

    assert torch.autograd.gradcheck(function, (inputs, *params.values()))


def test_lists_and_numpy_arrays_are_read_like_tensors() -> None:
    (module,) = random_modules(1)
    tokens = torch.randint(0, ARCH.input_size, (3, 6))
    expected = module.log_probs(tokens)
    torch.testing.assert_close(module.log_probs(tokens.tolist()), expected)
    torch.testing.assert_close(module.log_probs(tokens.numpy().astype(np.int16)), expected)
    floats = torch.randn(2, 4, ARCH.input_size)
    torch.testing.assert_close(module(floats.numpy().astype(np.float16)), module(floats.half().double()))
    with pytest.raises(TypeError, match=r"LSTMWithHead reads token ids \[B, T\] \(integers below 5\) or float inputs \[B, T, 5\]"):
        module(["a", "b"])
