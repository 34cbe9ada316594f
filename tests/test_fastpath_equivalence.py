"""The fast path computes what the plain path computes; adaptive extraction keeps masks and surfaces;
fresh sampling; the bf16 and compile options (speed itself is measured in benchmarks/, not here)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from autodecoder.decoding import adaptive
from autodecoder.experiment.keys import default
from autodecoder.model import accel, forward as fastpath
from autodecoder.training import sampling
from autodecoder.training import loop as training
from autodecoder.experiment import workspace as ws
from autodecoder.training.data import TrainingSet
from autodecoder.decoding.grid import decode_frames
from autodecoder.model.decoder import Decoder
from autodecoder.model.reference import assemble_inputs

#: bf16 autocast against float32, on decoded SDF values (measured on the demo and reference models:
#: max 0.03, mean 0.0014, sdf <= 0 masks agree on >= 99.96 % of voxels).
BF16_MAX_DIFF = 0.05
BF16_MEAN_DIFF = 0.005


def _train(exp, **kw):
    return training.train(exp, device="cpu", progress=False, log=lambda s: None, **kw)


def _latest(exp):
    return torch.load(ws.latest_file(exp), weights_only=True)


def _sdf_net(**opts) -> Decoder:
    torch.manual_seed(1)
    return Decoder(6, **{"dims": [24, 24, 24, 24], "latent_in": [2], "xyz_in_all": True, **opts})


# --------------------------------------------------------------------------
# the split network

@pytest.mark.parametrize("opts", [
    {},
    {"xyz_in_all": False, "latent_in": []},
    {"norm_layers": [0, 2], "use_tanh": True},
    {"norm_layers": [1, 3], "weight_norm": True},
    {"use_sine": False, "latent_in": [1, 3]},
], ids=["released-like", "plain-mlp", "layernorm-tanh", "weightnorm", "relu"])
def test_split_layers_compute_the_decoder_and_its_gradients(opts):
    dec = _sdf_net(**opts)
    g = torch.Generator().manual_seed(0)
    codes = (torch.randn(3, 6, generator=g) * 0.3).requires_grad_()
    xyz = torch.rand(3, 50, 3, generator=g) * 2 - 1
    times = torch.tensor([-1.0, 0.2, 1.0])
    plain = dec(assemble_inputs(codes, xyz, times)).reshape(3, 50)
    layers = fastpath.split_layers(dec)
    fast = fastpath.forward_points(dec, layers, fastpath.frame_biases(layers, codes, times), xyz)
    assert torch.allclose(plain, fast, atol=1e-5, rtol=0)
    params = list(dec.parameters()) + [codes]
    w = torch.randn(3, 50, generator=g)  # a smooth loss: |.| would flip on values near 0
    g_plain = torch.autograd.grad((plain * w).sum(), params)
    g_fast = torch.autograd.grad((fast * w).sum(), params)
    for a, b in zip(g_plain, g_fast):
        assert torch.allclose(a, b, atol=1e-4 * a.abs().max().item(), rtol=1e-4)
    assert set(dec.state_dict()) == set(_sdf_net(**opts).state_dict())  # same parameters, same checkpoints


def test_fast_path_applies_except_with_dropout_while_training():
    assert fastpath.fast_path_applies(_sdf_net(), training=True)
    assert not fastpath.fast_path_applies(_sdf_net(latent_dropout=True), training=True)
    assert not fastpath.fast_path_applies(_sdf_net(dropout=[1], dropout_prob=0.2), training=True)
    assert fastpath.fast_path_applies(_sdf_net(dropout=[1], dropout_prob=0.0), training=True)
    assert fastpath.fast_path_applies(_sdf_net(latent_dropout=True), training=False)  # decoding


# --------------------------------------------------------------------------
# training

@pytest.mark.slow
def test_fast_training_gives_the_plain_loss_curve(tiny_experiment):
    """Same seed: the loss of every epoch and the final weights agree to float rounding, with chunks
    smaller than a frame, and whatever the number of worker threads."""
    runs = {}
    for name, over in [("plain", dict(FastPath=False)), ("fast", dict(FastPath=True, Threads=2)),
                       ("chunks", dict(FastPath=True, TrainChunkSize=60, Threads=1))]:
        exp = tiny_experiment(name, NumEpochs=4, OptRotEpoch=2, **over)
        assert _train(exp, seed=7) == 0
        runs[name] = _latest(exp)
    ref = np.array(runs["plain"]["history"])[:, 1:3]
    assert ref[-1, 0] < ref[0, 0]  # it learns
    for name in ("fast", "chunks"):
        np.testing.assert_allclose(np.array(runs[name]["history"])[:, 1:3], ref, rtol=1e-5, atol=1e-6)
        for k, v in runs["plain"]["decoder"].items():
            assert torch.allclose(runs[name]["decoder"][k], v, atol=1e-5, rtol=0), k
        assert torch.allclose(runs[name]["codes"], runs["plain"]["codes"], atol=1e-5, rtol=0)
        assert torch.allclose(runs[name]["angles"], runs["plain"]["angles"], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_latent_dropout_falls_back_to_the_plain_path(tiny_experiment):
    net = {"dims": [32, 32, 32], "latent_in": [2], "xyz_in_all": True, "latent_dropout": True}
    a = tiny_experiment("a", NumEpochs=2, NetworkSpecs=net, FastPath=True)
    b = tiny_experiment("b", NumEpochs=2, NetworkSpecs=net, FastPath=False)
    messages = []
    assert training.train(a, device="cpu", seed=3, progress=False, log=messages.append) == 0
    assert any("plain path" in m for m in messages)
    assert _train(b, seed=3) == 0
    assert _latest(a)["history"][-1][1:3] == _latest(b)["history"][-1][1:3]  # the very same computation


def test_layouts_draw_the_same_samples(tiny_data):
    compact = TrainingSet.from_folder(tiny_data, True, 3, 0.05, False, seed=0, progress=False)
    original = TrainingSet.from_folder(tiny_data, True, 3, 0.05, False, seed=0, progress=False, layout="original")
    assert original.samples.shape == (12, 134, 4) and original.samples.dtype == torch.float32
    assert compact.nbytes() * 2 == original.nbytes()  # 8 bytes per sample instead of 16
    for epoch in (1, 2):
        bc, bo = compact.batch(torch.tensor([4, 7]), epoch), original.batch(torch.tensor([4, 7]), epoch)
        assert bc.index is not None and bc.index.dtype == torch.int32
        assert torch.equal(bc.points, bo.points) and torch.equal(bc.sdf, bo.sdf)
    otf_c = TrainingSet.from_folder(tiny_data, True, 3, 0.05, True, seed=0, progress=False)
    otf_o = TrainingSet.from_folder(tiny_data, True, 3, 0.05, True, seed=0, progress=False, layout="original")
    assert torch.equal(otf_c.batch(torch.tensor([3]), 5).points, otf_o.batch(torch.tensor([3]), 5).points)


def test_fresh_sampling_draws_new_points_each_epoch_from_a_bounded_pool(tiny_data):
    n_vox = 16 * 14 * 12
    ts = TrainingSet.from_folder(tiny_data, True, 3, 0.05, False, seed=0, progress=False, fresh=True, pool_factor=3)
    n = ts.n_points
    assert ts.index.dtype == torch.int32 and ts.values.dtype == torch.float32
    sizes = (ts.pool_near + ts.pool_far).numpy()
    assert sizes.max() <= 3 * n + 2 and ts.index.numel() == sizes.sum() < 12 * n_vox / 4  # never whole grids
    e1, e2 = ts.batch(torch.tensor([3, 8]), 1), ts.batch(torch.tensor([3, 8]), 2)
    assert e1.sdf.shape == (2, n)
    assert not torch.equal(e1.index, e2.index)
    assert torch.equal(e1.index, ts.batch(torch.tensor([3, 8]), 1).index)  # keyed by epoch
    assert torch.equal(e1.index[0], ts.batch(torch.tensor([3]), 1).index[0])  # not by the batch
    assert int((e1.sdf[0] <= sampling.NEAR_THRESHOLD).sum()) == int(0.7 * n)  # the 70/30 rule
    from autodecoder.io.sequences import read_sequence
    frame = read_sequence(sorted(tiny_data.iterdir())[0])[3].reshape(-1)
    assert np.array_equal(frame[e1.index[0].numpy()], e1.sdf[0].numpy())
    # over epochs the draws cover far more distinct points than one fixed draw
    seen = torch.unique(torch.cat([ts.batch(torch.tensor([3]), e).index[0] for e in range(1, 9)]))
    assert len(seen) > 1.5 * len(torch.unique(e1.index[0]))
    half = TrainingSet.from_folder(tiny_data, True, 3, 0.05, False, seed=0, progress=False, fresh=True, value_dtype="float16")
    assert half.values.dtype == torch.float16 and half.batch(torch.tensor([0]), 1).sdf.dtype == torch.float32


@pytest.mark.slow
def test_fresh_sampling_trains_and_refuses_on_the_fly_too(tiny_experiment):
    from autodecoder.experiment.errors import UserError
    exp = tiny_experiment("fresh", NumEpochs=2, FreshSampling=True, SamplePoolFactor=4, SampleValueDtype="float16")
    assert _train(exp, seed=1) == 0
    both = tiny_experiment("both", NumEpochs=1, FreshSampling=True, OnTheFlySampling=True)
    with pytest.raises(UserError, match="choose one"):
        _train(both, seed=1)


# --------------------------------------------------------------------------
# decoding

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import trained_spheres
    exp = trained_spheres(tmp_path_factory.mktemp("speed"), [0.3, 0.45], (16, 14, 12), 3, 0.15, NumEpochs=3,
                          TrainSampleFraction=0.2)
    st = _latest(exp)
    dec = Decoder(8, **st["specs"]["NetworkSpecs"])
    dec.load_state_dict(st["decoder"])
    return dec, st["codes"].numpy(), st["angles"].numpy(), exp


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_dense_fast_decoding_equals_plain(trained, threads):
    dec, codes, angles, _ = trained
    dims = (23, 17, 20)  # several chunks of 1000 points, not a multiple of the chunk
    plain = list(decode_frames(dec, codes[1], angles[1], dims, 3, 1000, fast=False))
    stats = {}
    fast = list(decode_frames(dec, codes[1], angles[1], dims, 3, 1000, threads=threads, stats=stats))
    assert stats["evaluations"] == 3 * 23 * 17 * 20
    for a, b in zip(plain, fast):
        assert b.dtype == np.float32 and b.shape == dims
        assert np.abs(a - b).max() <= 1e-5


def _slope(f: np.ndarray) -> float:
    h = [2 / (n - 1) for n in f.shape]
    return max(float(np.abs(np.diff(f, axis=a)).max()) / h[a] for a in range(3))


@pytest.mark.slow
def test_adaptive_extraction_keeps_masks_and_surfaces(trained):
    from skimage.measure import marching_cubes
    dec, codes, angles, _ = trained
    dims = (40, 36, 33)
    dense = list(decode_frames(dec, codes[0], angles[0], dims, 3, 4096))
    # a barely trained network: take as "surface" the level that leaves 15 % of the voxels inside
    level = float(np.quantile(dense[1], 0.15))
    levels = (level, level + 0.035)
    lip = 3 * max(_slope(f) for f in dense)  # a bound for this small network, with a margin
    stats = {"exact": None}
    for t, d in enumerate(dense):
        a = next(decode_frames(dec, codes[0], angles[0], dims, 3, 4096, adaptive=True, levels=levels,
                               lipschitz=lip, coarse=4, stats=stats, frames=[t]))
        for lev in levels:
            assert np.array_equal(a <= lev, d <= lev)
        ex = stats["exact"]
        assert np.abs(a[ex] - d[ex]).max() <= 1e-5  # the band holds the network's values
        va, fa = marching_cubes(a, level)[:2]
        vd, fd = marching_cubes(d, level)[:2]
        assert va.shape == vd.shape and np.abs(va - vd).max() < 1e-4 and np.array_equal(fa, fd)
    assert stats["evaluations"] <= 3 * np.prod(dims)  # (savings need finer grids: see the analytic test)


def test_adaptive_on_an_analytic_field_with_a_thin_tube():
    """A ball with a one-voxel-thin tube: the tube survives, and most voxels are never evaluated."""
    dims = (96, 96, 96)
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in dims]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    ball = np.sqrt(x ** 2 + y ** 2 + z ** 2) - 0.4
    tube = np.sqrt((y - 0.02) ** 2 + z ** 2) - 0.016  # 1-2 voxels (0.021) across
    field = np.minimum(ball, np.maximum(tube, np.abs(x) - 0.9)).astype(np.float32) * 4  # SDF unit 0.25
    calls = []

    def evaluate(idx):
        calls.append(len(idx))
        return field.reshape(-1)[idx]

    stats = {"exact": None}
    out = adaptive.decode_adaptive(evaluate, dims, stats=stats)
    assert np.array_equal(out <= 0, field <= 0)
    assert (out[83] <= 0).sum() > 0  # the tube at x = 0.75, far from the ball
    assert np.array_equal(out[stats["exact"]], field[stats["exact"]])
    assert sum(calls) == stats["evaluations"] < np.prod(dims) / 3
    assert adaptive.lipschitz_bound() == pytest.approx(default("AdaptiveSafety") * 255 / 64)


def _ball_with_channel(n: int, depth: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """A ball (exact SDF in SDF units, 0.25 of a coordinate unit each) and a channel one voxel wide from
    its surface ``depth`` voxels inwards along x, between lattice points (y, z odd), holding +0.01 (outside):
    next to it the field drops faster than the slope bound allows."""
    axes = np.linspace(-1, 1, n, dtype=np.float32)
    x, y, z = np.meshgrid(axes, axes, axes, indexing="ij")
    field = ((np.sqrt(x ** 2 + y ** 2 + z ** 2) - 0.8) * 4).astype(np.float32)
    c = n // 2 | 1  # odd: never on a coarse lattice
    surface = int(np.argmax(field[:, c, c] <= 0))
    channel = (slice(surface, surface + depth), c, c)
    field[channel] = 0.01
    return field, channel


def test_adaptive_follows_a_channel_steeper_than_the_bound():
    """Deep in the ball the bound certifies the channel's voxels as inside; following the cut cells from
    the surface finds every one of them (the masks equal the field's), with far fewer evaluations."""
    n = 64
    field, channel = _ball_with_channel(n, depth=16)
    stats: dict = {"exact": None}
    out = adaptive.decode_adaptive(lambda idx: field.reshape(-1)[idx], (n,) * 3, levels=(0.0, 0.035), stats=stats)
    assert np.all(out[channel] > 0)
    for level in (0.0, 0.035):
        assert np.array_equal(out <= level, field <= level)
    assert stats["exact"][channel].all()
    assert stats["evaluations"] < field.size / 2
    # placeholders are rounded to the stated step, on their side of every level
    rest = out[~stats["exact"]]
    assert np.array_equal(rest, np.round(rest / adaptive.PLACEHOLDER_STEP) * adaptive.PLACEHOLDER_STEP)


# --------------------------------------------------------------------------
# GPU options, on the CPU

@pytest.mark.slow
def test_bf16_autocast_and_compile_run_on_cpu_close_to_fp32(trained, tiny_experiment):
    dec, codes, angles, _ = trained
    dims = (12, 11, 10)
    ref = next(decode_frames(dec, codes[0], angles[0], dims, 3, 1000))
    bf16 = accel.Accel(autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    got = next(decode_frames(dec, codes[0], angles[0], dims, 3, 1000, accel=bf16))
    assert np.abs(got - ref).max() <= BF16_MAX_DIFF and np.abs(got - ref).mean() <= BF16_MEAN_DIFF
    compiled = accel.Accel(forward=accel.compiled_forward("aot_eager"))  # dynamo + AOT autograd, no codegen
    got = next(decode_frames(dec, codes[0], angles[0], dims, 3, 1000, accel=compiled))
    assert np.abs(got - ref).max() <= 1e-5
    curves = {}
    for name, over in [("fp32", {}), ("bf16", {"Bf16Autocast": True}), ("compiled", {"Compile": "aot_eager"}),
                       ("bf16-plain", {"Bf16Autocast": True, "FastPath": False})]:
        exp = tiny_experiment(name, NumEpochs=2, **over)
        assert _train(exp, seed=2) == 0
        curves[name] = np.array(_latest(exp)["history"])[:, 1]
    np.testing.assert_allclose(curves["compiled"], curves["fp32"], rtol=1e-5)
    np.testing.assert_allclose(curves["bf16"], curves["fp32"], rtol=0.05)
    np.testing.assert_allclose(curves["bf16-plain"], curves["fp32"], rtol=0.05)


@pytest.mark.slow
def test_test_py_adaptive_flag_records_the_extraction(trained, tmp_path):
    import h5py
    from autodecoder.cli.test import main as test_main
    from autodecoder.io.sequences import read_sequence
    exp = trained[3]
    common = ["-x", str(exp), "-t", "reconstruct", "-e", "latest", "--device", "cpu", "--no-progress", "--seed", "0"]
    assert test_main(common + ["--out", str(tmp_path / "d")]) == 0
    assert test_main(common + ["--out", str(tmp_path / "a"), "--adaptive"]) == 0
    for d, a in zip(sorted((tmp_path / "d").glob("*.h5")), sorted((tmp_path / "a").glob("*.h5"))):
        with h5py.File(d) as fd, h5py.File(a) as fa:
            assert fd.attrs["extraction"] == "dense" and fa.attrs["extraction"] == "adaptive"
        assert read_sequence(d).shape == read_sequence(a).shape


def test_added_keys_are_documented():
    from autodecoder.experiment.keys import TOP_KEYS
    from conftest import ROOT
    text = (ROOT / "experiments" / "README.md").read_text()
    table = text[text.index("### Keys this project adds"):]
    for key in ("FastPath", "TrainChunkSize", "Threads", "FreshSampling", "SamplePoolFactor", "SampleValueDtype",
                "Bf16Autocast", "TF32Matmul", "Compile", "AdaptiveSafety"):
        assert TOP_KEYS[key].added and f"| `{key}` |" in table, key


@pytest.mark.parametrize("dims", [(1, 9, 7), (2, 2, 2), (5, 1, 1), (17, 30, 9), (33, 33, 33)])
def test_adaptive_on_odd_grids(dims):
    axes = [np.linspace(-1, 1, n, dtype=np.float32) if n > 1 else np.full(1, -1, np.float32) for n in dims]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    field = (np.sqrt((x + 0.2) ** 2 + y ** 2 + z ** 2) - 0.5).astype(np.float32)
    out = adaptive.decode_adaptive(lambda idx: field.reshape(-1)[idx], dims, levels=(0.0, 0.1), lipschitz=2.0)
    assert out.shape == dims and out.dtype == np.float32
    assert np.array_equal(out <= 0, field <= 0) and np.array_equal(out <= 0.1, field <= 0.1)
