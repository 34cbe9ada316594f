"""How much memory a job needs, estimated from the specs before anything large is allocated.

The estimates count the arrays that dominate (with the widths of every layer from
:func:`autodecoder.model.decoder.layer_widths`), in bytes, rounded up rather than down: they decide
whether a job is refused up front (:func:`autodecoder.experiment.guards.check_memory`), so a
job that fits must never be refused, and one that is tens of times too large must be.
"""

from __future__ import annotations

import math
from typing import Sequence

from autodecoder.model.decoder import N_COORDS, layer_widths

F32 = 4
#: Bytes per sample held: compact (int32 index + float32 value) and the original's float32 x, y, z, sdf rows.
SAMPLE_BYTES = {"compact": 8, "original": 16}
#: Adam's two moments for each of the two optimisers, plus the gradient and the weights themselves.
STATE_COPIES = 1 + 1 + 2 * 2
#: Activations kept for the backward pass, per hidden unit and point (pre-activation, activation, gradient).
ACTIVATION_COPIES = 3


def parameter_count(specs: dict) -> int:
    """Weights and biases of the decoder of ``specs`` (CodeLength, NetworkSpecs)."""
    return sum(n_in * n_out + n_out for n_in, n_out in layer_widths(specs["CodeLength"], specs["NetworkSpecs"]))


def _width_sum(specs: dict) -> int:
    """Sum of every layer's input and output widths: the floats one point holds through the network."""
    return sum(n_in + n_out for n_in, n_out in layer_widths(specs["CodeLength"], specs["NetworkSpecs"]))


def training_bytes(specs: dict, grid: Sequence[int], n_frames: int, threads: int = 1) -> int:
    """Peak bytes of training ``n_frames`` frames on ``grid``: weights, tables, gradients and both
    optimisers; the samples held; one frame being read; the activations of one step."""
    voxels = math.prod(int(n) for n in grid)
    n_points = int(voxels * specs["TrainSampleFraction"])
    tables = specs["NumSequences"] * (specs["CodeLength"] + 3)
    state = (parameter_count(specs) + tables) * F32 * STATE_COPIES
    layout = "compact" if specs["FastPath"] or specs["FreshSampling"] else "original"
    per_frame = voxels if specs["OnTheFlySampling"] else n_points
    if specs["FreshSampling"]:
        per_frame = int(math.ceil(specs["SamplePoolFactor"] * n_points))
    samples = n_frames * per_frame * SAMPLE_BYTES[layout]
    reading = voxels * F32 * 3  # the frame, its flat copy and the near mask
    batch_points = specs["FramesPerBatch"] * n_points
    active = min(batch_points, specs["TrainChunkSize"] * max(threads, 1)) if specs["FastPath"] else batch_points
    activations = active * (_width_sum(specs) + specs["CodeLength"] + N_COORDS) * F32 * ACTIVATION_COPIES
    return state + samples + reading + activations


def decoding_bytes(specs: dict, grid: Sequence[int], adaptive: bool = False, whole_sequence_frames: int = 0) -> int:
    """Peak bytes of decoding one frame on ``grid`` (and of holding ``whole_sequence_frames`` frames,
    as a MAT output must): the frame, its copy on the way to disk, the points of the plain path or
    the lattices of adaptive extraction, and one chunk through the network."""
    voxels = math.prod(int(n) for n in grid)
    frame = voxels * F32 * 2
    if adaptive:
        frame += voxels * (F32 * 2 + 3)  # interval bounds and the exact/valid/active masks
    elif not specs["FastPath"]:
        frame += voxels * F32 * 3 * 2  # grid points and their rotated copy
    chunk = min(specs["ReconstructionSubsetSize"], voxels) * (_width_sum(specs) + specs["CodeLength"]) * F32 * 2
    return frame + chunk + parameter_count(specs) * F32 + whole_sequence_frames * voxels * F32
