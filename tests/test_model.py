"""The decoder: layer widths of every NetworkSpecs option, initialisation, forward pass details."""

from __future__ import annotations

import math

import pytest
import torch

from autodecoder.model.checkpoints import load_model_state
from autodecoder.model.decoder import Decoder
from autodecoder.model.reference import assemble_inputs
from conftest import REFERENCE

C = 8  # code length: d0 = 12


def shapes(dec: Decoder) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in dec.state_dict().items()}


def test_plain_widths():
    s = shapes(Decoder(C, [32, 32, 32]))
    assert s == {"lin0.weight": (32, 12), "lin0.bias": (32,), "lin1.weight": (32, 32), "lin1.bias": (32,),
                 "lin2.weight": (32, 32), "lin2.bias": (32,), "lin3.weight": (1, 32), "lin3.bias": (1,)}


def test_xyz_in_all_widths():
    # every layer but the last leaves 4 places for x, y, z, t in the next one
    s = shapes(Decoder(C, [32, 32, 32], xyz_in_all=True))
    assert s["lin0.weight"] == (28, 12) and s["lin1.weight"] == (28, 32) and s["lin2.weight"] == (28, 32)
    assert s["lin3.weight"] == (1, 32)


def test_latent_in_widths():
    # layer 2 gets the whole input (12) appended: layer 1 outputs 32 - 12 = 20
    s = shapes(Decoder(C, [32, 32, 32], latent_in=[2]))
    assert s["lin1.weight"] == (20, 32) and s["lin2.weight"] == (32, 32)
    s = shapes(Decoder(C, [32, 32, 32], latent_in=[2], xyz_in_all=True))
    assert s["lin0.weight"] == (28, 12) and s["lin1.weight"] == (20, 32) and s["lin2.weight"] == (28, 32)


def test_released_architecture_matches_original_checkpoint():
    state, epoch = load_model_state(REFERENCE / "model_parameters" / "e0010_model.pth")
    dec = Decoder(192, [128, 128, 128, 320, 128, 128, 320, 128, 128, 128], latent_in=[4, 7], xyz_in_all=True)
    assert epoch == 10
    assert shapes(dec) == {k: tuple(v.shape) for k, v in state.items()}
    assert sum(p.numel() for p in dec.parameters()) == 216_137  # "about 216k parameters"


def test_norm_layers_layernorm_and_weight_norm():
    s = shapes(Decoder(C, [32, 32, 32], norm_layers=[0, 2]))
    assert s["bn0.weight"] == (32,) and s["bn2.bias"] == (32,) and "bn1.weight" not in s
    s = shapes(Decoder(C, [32, 32, 32], norm_layers=[0, 2], weight_norm=True))
    assert not any(k.startswith("bn") for k in s)
    assert s["lin0.weight_g"] == (32, 1) and s["lin0.weight_v"] == (32, 12) and "lin0.weight" not in s
    assert s["lin1.weight"] == (32, 32)


def test_weight_norm_computes_g_v_over_norm():
    dec = Decoder(C, [16], norm_layers=[0], weight_norm=True)
    lin = dec.lin0
    with torch.no_grad():
        lin.weight_g.fill_(2.0)
    w = lin.weight
    assert torch.allclose(w.norm(dim=1), torch.full((16,), 2.0), atol=1e-6)


def test_sine_initialisation_bounds():
    torch.manual_seed(0)
    dec = Decoder(C, [32, 32, 32], norm_layers=[1])
    assert dec.lin0.weight.abs().max() <= 1 / 12  # first layer: ±1/fan_in
    assert dec.lin0.weight.abs().max() > 0.9 / 12
    bound = math.sqrt(6 / 32) / 30  # others: ±sqrt(6/fan_in)/30 = 0.01443
    for lin in (dec.lin1, dec.lin2, dec.lin3):
        assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.8 * bound
    # the quirk: LayerNorm gains are drawn too (size(-1) = 32), not left at 1
    assert dec.bn1.weight.abs().max() <= bound
    # biases keep PyTorch's default, ±1/sqrt(fan_in)
    assert dec.lin1.bias.abs().max() <= 1 / math.sqrt(32) and dec.lin1.bias.abs().max() > bound


def test_relu_uses_default_initialisation_and_relu():
    torch.manual_seed(0)
    dec = Decoder(C, [32, 32], use_sine=False)
    assert dec.lin1.weight.abs().max() > math.sqrt(6 / 32) / 30  # not the sine bound
    assert dec.lin1.weight.abs().max() <= 1 / math.sqrt(32)
    x = torch.randn(5, 12)
    h = torch.relu(dec.lin0(x))
    assert torch.allclose(dec(x), dec.lin2(torch.relu(dec.lin1(h))), atol=1e-6)


def test_sine_forward_is_sin_30x():
    torch.manual_seed(0)
    dec = Decoder(C, [16])
    x = torch.randn(7, 12)
    assert torch.allclose(dec(x), dec.lin1(torch.sin(30 * dec.lin0(x))), atol=1e-6)


def test_tanh_only_with_use_tanh():
    torch.manual_seed(0)
    dec = Decoder(C, [16], use_tanh=True)
    with torch.no_grad():
        dec.lin1.bias.fill_(50.0)
    out = dec(torch.randn(4, 12))
    assert torch.all(out <= 1.0) and torch.all(out > 0.99)
    dec2 = Decoder(C, [16])
    with torch.no_grad():
        dec2.lin1.bias.fill_(50.0)
    assert torch.all(dec2(torch.randn(4, 12)) > 40)


def test_dropout_only_while_training():
    torch.manual_seed(0)
    dec = Decoder(C, [64, 64], dropout=[0, 1], dropout_prob=0.5)
    x = torch.randn(20, 12)
    dec.train()
    assert not torch.equal(dec(x), dec(x))
    dec.eval()
    assert torch.equal(dec(x), dec(x))


def test_latent_dropout_spares_latent_in_input():
    torch.manual_seed(0)
    dec = Decoder(C, [32, 32, 32], latent_in=[2], latent_dropout=True)
    seen = {}
    dec.lin0.register_forward_pre_hook(lambda m, a: seen.__setitem__("lin0", a[0].clone()))
    dec.lin2.register_forward_pre_hook(lambda m, a: seen.__setitem__("lin2", a[0].clone()))
    x = torch.randn(200, 12)
    dec.train()
    dec(x)
    code_in = seen["lin0"][:, :C]
    dropped = code_in == 0
    assert 0.1 < dropped.float().mean() < 0.3  # p = 0.2 on the code part
    assert torch.allclose(code_in[~dropped], x[:, :C][~dropped] / 0.8, atol=1e-6)
    assert torch.equal(seen["lin0"][:, C:], x[:, C:])  # x, y, z, t untouched
    assert torch.equal(seen["lin2"][:, -12:], x)  # latent_in gets the input as it was
    dec.eval()
    dec(x)
    assert torch.equal(seen["lin0"], x)


def test_unknown_option_is_an_error():
    with pytest.raises(TypeError):
        Decoder(C, [32], positional_encoding=True)


def test_assemble_inputs_layout():
    codes = torch.arange(2 * C, dtype=torch.float32).reshape(2, C)
    xyz = torch.randn(2, 3, 3)
    t = torch.tensor([-1.0, 0.5])
    rows = assemble_inputs(codes, xyz, t)
    assert rows.shape == (6, C + 4)
    assert torch.equal(rows[4, :C], codes[1]) and torch.equal(rows[4, C:C + 3], xyz[1, 1])
    assert rows[4, -1] == 0.5 and rows[0, -1] == -1.0
