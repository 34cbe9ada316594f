"""Every parameter of a synthesis, with its default, its unit and its check; named presets.

A configuration is a set of sections (:class:`SynthesisConfig`); a JSON file given with
``--config`` holds some of their keys (``{"optics": {"na": 1.2}, "camera": {"target_snr": 8}}``)
and a preset (``"preset": "confocal-low-snr"``) fills others first. Unknown keys are errors with a
"did you mean" hint, as in ``specs.json``. Units: µm for lengths, seconds for the frame interval,
frames for times, photons for light, ADU for camera values.

Geometry, stated once: the model's [-1, 1]³ cube is ``cube_size_um`` µm; the SDF axes
``(X, Y, Z)`` are the image axes ``(x, y, z)`` with Z the optical axis, so an SDF array
``(T, X, Y, Z)`` is the image array ``(T, Z, Y, X)`` transposed; voxel sizes are given along
``x, y, z``; motion is in µm per frame.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.specs import read_json, refuse_unknown_key
from autodecoder.microscopy.camera import CameraSettings
from autodecoder.microscopy.optics import PSFSettings


@dataclass
class FieldConfig:
    """The field of view and the time axis."""

    shape_zyx: tuple[int, int, int] = (64, 256, 256)  # voxels
    voxel_size_xyz: tuple[float, float, float] = (0.2, 0.2, 0.5)  # µm along x, y, z
    frames: int = 30
    frame_interval_s: float = 60.0
    cube_size_um: float = 24.0  # the model's [-1, 1]³ cube, in µm: the demo's cells are 9–22 µm across


@dataclass
class CellsConfig:
    """Which cells, their timing, and the ground truth's rules."""

    count: int = 4
    threshold: float = 0.0  # the cell is sdf <= threshold
    life_frames: int = 0  # frames one life (model time -1 … 1) spans; 0 = the movie's frames
    min_volume_um3: float = 20.0  # a split part smaller than this is a fragment, not a daughter
    min_frames: int = 2  # a daughter must persist this many frames
    adaptive: bool = True  # decode each cell densely only near its surface


@dataclass
class SceneConfig:
    """Placement and motion (see :class:`autodecoder.microscopy.scene.SceneSettings`)."""

    layout: str = "scattered"
    min_gap_um: float = 1.0
    max_tries: int = 1000
    margin_um: float = 0.0
    drift_um_per_frame: tuple[float, float, float] = (0.0, 0.0, 0.0)  # z, y, x
    step_um: float = 0.3
    keep_apart: bool = True
    may_leave: bool = False
    offset_frames: int = 10


@dataclass
class PhantomConfig:
    """What fluoresces inside each cell."""

    texture: bool = True
    texture_scale_um: float = 2.0
    texture_octaves: int = 4
    texture_contrast: float = 0.6  # 0: uniform, 1: from 0 to full brightness
    membrane_um: float = 0.5
    nucleus_depth_um: float = 3.0
    membrane_weight: float = 1.5
    cytoplasm_weight: float = 1.0
    nucleus_weight: float = 0.5
    brightness_cv: float = 0.2  # per-cell brightness: log-normal with this coefficient of variation


@dataclass
class OpticsConfig:
    """The microscope (see :class:`autodecoder.microscopy.optics.PSFSettings`)."""

    psf: bool = True
    modality: str = PSFSettings.modality  # the microscope's defaults are PSFSettings'
    model: str = PSFSettings.model
    na: float = PSFSettings.na
    emission_um: float = PSFSettings.emission_um
    excitation_um: float = PSFSettings.excitation_um
    ni: float = PSFSettings.ni
    ns: float = PSFSettings.ns
    pinhole_au: float = PSFSettings.pinhole_au
    oversample_z: int = 3  # odd: the middle fine plane is the output voxel centre
    depth_attenuation: bool = False
    attenuation_z0: float = 10.0  # voxels
    attenuation_f: float = 200.0
    illumination_strength: float = 0.0  # 0: even illumination


@dataclass
class CameraConfig:
    """Detector and time (see :class:`autodecoder.microscopy.camera.CameraSettings`)."""

    noise: bool = True
    quantum_efficiency: float = CameraSettings.quantum_efficiency  # the detector's defaults are CameraSettings'
    gain_adu_per_e: float = CameraSettings.gain_adu_per_e
    offset_adu: float = CameraSettings.offset_adu
    read_noise_e: float = CameraSettings.read_noise_e
    em_gain: float | None = CameraSettings.em_gain
    bit_depth: int = CameraSettings.bit_depth
    target_snr: float | None = 10.0  # with target_cr: the photon budget is solved on the first frame
    target_cr: float | None = 1.5
    peak_photons: float = 200.0  # used when no target is given
    background_photons: float = 20.0
    bleaching_tau_frames: float | None = 100.0  # None: no bleaching


@dataclass
class OutputConfig:
    """What is written."""

    ctc: bool = True
    ome_tiff: bool = True
    ome_zarr: bool = False
    projections: bool = True
    save_interim: bool = False
    sequences: int = 1


@dataclass
class SynthesisConfig:
    """All parameters of a synthesis, by section."""

    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    cells: CellsConfig = dataclasses.field(default_factory=CellsConfig)
    scene: SceneConfig = dataclasses.field(default_factory=SceneConfig)
    phantom: PhantomConfig = dataclasses.field(default_factory=PhantomConfig)
    optics: OpticsConfig = dataclasses.field(default_factory=OpticsConfig)
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    preset: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Named presets: widefield or confocal optics × a low or high signal-to-noise ratio (CTC definitions).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "widefield-high-snr": {"optics": {"modality": "widefield", "na": 1.0}, "camera": {"target_snr": 20.0,
                                                                                     "target_cr": 2.0}},
    "widefield-low-snr": {"optics": {"modality": "widefield", "na": 1.0}, "camera": {"target_snr": 4.0,
                                                                                    "target_cr": 1.3}},
    "confocal-high-snr": {"optics": {"modality": "confocal", "na": 1.2, "pinhole_au": 1.0},
                          "camera": {"target_snr": 15.0, "target_cr": 3.0}},
    "confocal-low-snr": {"optics": {"modality": "confocal", "na": 1.2, "pinhole_au": 1.0},
                         "camera": {"target_snr": 3.0, "target_cr": 1.5}},
}

_SECTIONS = {f.name: f.type for f in dataclasses.fields(SynthesisConfig) if f.name != "preset"}


def _apply(config: SynthesisConfig, updates: dict[str, Any], source: str) -> None:
    for section, values in updates.items():
        if section == "preset":
            continue
        if section not in _SECTIONS:
            refuse_unknown_key(source, section, list(_SECTIONS) + ["preset"])
        if not isinstance(values, dict):
            raise UserError(f"{source}: \"{section}\": expected an object of settings, got {values!r}")
        target = getattr(config, section)
        names = [f.name for f in dataclasses.fields(target)]
        for key, value in values.items():
            if key not in names:
                refuse_unknown_key(source, f"{section}.{key}", [f"{section}.{n}" for n in names])
            default = getattr(type(target)(), key)
            setattr(target, key, convert_setting(value, default, f"{source}: \"{section}.{key}\""))


def convert_setting(value: Any, default: Any, where: str) -> Any:
    """``value`` as the type of ``default`` (tuples from lists; numbers; None where allowed)."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise UserError(f"{where}: expected a list of {len(default)} numbers, got {value!r}")
        return tuple(convert_setting(v, d, where) for v, d in zip(value, default))
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
        return value
    if value is None or isinstance(value, str):
        return value
    if isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: expected a number, got {value!r}")
    return value


def build_config(path: str | Path | None = None, preset: str | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None) -> SynthesisConfig:
    """Defaults, then the preset (``preset``, or the file's ``"preset"``), then the file, then ``overrides``."""
    raw = read_json(Path(path)) if path is not None else {}
    name = preset or raw.get("preset")
    config = SynthesisConfig(preset=name)
    if name is not None:
        if name not in PRESETS:
            raise UserError(f"preset \"{name}\": expected one of {', '.join(PRESETS)}")
        _apply(config, copy.deepcopy(PRESETS[name]), f"preset {name}")
    if raw:
        _apply(config, raw, str(path))
    if overrides:
        _apply(config, overrides, "command line")
    check(config)
    return config


def check(config: SynthesisConfig) -> None:
    """One-line errors for values out of range (the stages check the rest)."""
    f, c, o = config.field, config.cells, config.optics
    rules = [
        (min(f.shape_zyx) >= 1, "field.shape_zyx", "three sizes >= 1 (voxels along z, y, x)"),
        (min(f.voxel_size_xyz) > 0, "field.voxel_size_xyz", "three sizes > 0 (µm along x, y, z)"),
        (f.frames >= 1, "field.frames", "an integer >= 1"),
        (f.frame_interval_s > 0 and f.cube_size_um > 0, "field.frame_interval_s/cube_size_um", "numbers > 0"),
        (c.count >= 1 and c.min_frames >= 1 and c.life_frames >= 0, "cells.count/min_frames/life_frames",
         "count, min_frames >= 1 and life_frames >= 0"),
        (o.oversample_z >= 1 and o.oversample_z % 2 == 1, "optics.oversample_z",
         "an odd integer >= 1 (the middle fine plane is the output voxel centre)"),
        (config.output.sequences >= 1, "output.sequences", "an integer >= 1"),
        (0 <= config.phantom.texture_contrast <= 1, "phantom.texture_contrast", "a number in [0, 1]"),
    ]
    for ok, key, expected in rules:
        if not ok:
            raise UserError(f"synthesis setting \"{key}\": expected {expected}")


def voxel_size_zyx(config: SynthesisConfig) -> tuple[float, float, float]:
    """The voxel size in µm along (z, y, x), the image axis order."""
    x, y, z = config.field.voxel_size_xyz
    return (float(z), float(y), float(x))


def field_um(config: SynthesisConfig) -> tuple[float, float, float]:
    """The field of view's extent in µm along (z, y, x)."""
    return tuple(n * v for n, v in zip(config.field.shape_zyx, voxel_size_zyx(config)))  # type: ignore[return-value]


__all__ = ["SynthesisConfig", "FieldConfig", "CellsConfig", "SceneConfig", "PhantomConfig", "OpticsConfig",
           "CameraConfig", "OutputConfig", "PRESETS", "build_config", "check", "voxel_size_zyx", "field_um"]
