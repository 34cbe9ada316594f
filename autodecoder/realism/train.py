"""``realism.py train``: learn to make synthetic images look like real recordings; one loop, top to bottom.

Unpaired (CycleGAN-style): ``to_real`` maps synthetic patches to real-looking ones and ``to_synthetic``
maps back; each has a patch discriminator. Generator loss
``w_adv (LS(D_real(G(s))) + LS(D_syn(F(r)))) + w_cycle (|F(G(s)) - s| + |G(F(r)) - r|)
+ w_identity (|G(r) - r| + |F(s) - s|)``; each discriminator ``½ (LS(D(x), 1) + LS(D(fake), 0))``.
Paired (pix2pix-style): ``to_real`` maps the mask channels of real images to those images; the
discriminator sees (masks, image); generator loss ``w_adv LS(D(m, G(m))) + w_l1 |G(m) - r|``.
Adam for the generators and for the discriminators; both rates fall linearly to zero over the steps
after ``decay_from``. No pool of earlier fakes: the discriminators see the current batch.

The run folder holds ``checkpoint.pth`` (everything needed to resume exactly and to apply: settings,
weights, both optimisers, the step, every random state including the patch sampler's, the intensity
scales, the loss history), ``realism.json`` (the same settings and numbers, readable) and ``loss.png``.
All are written under a temporary name and renamed. The folder is locked while the run trains;
Ctrl-C or SIGTERM finishes the step, saves and exits with status 130; ``--resume`` then reaches the
weights an uninterrupted run reaches.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from autodecoder import __version__
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import (EXIT_STOPPED, atomic_path, atomic_write_text, check_memory,
                                           clean_stale_temporaries, ensure_writable_dir, format_bytes, hold_lock,
                                           stop_requests)
from autodecoder.experiment.runtime import pick_device, resolve_seed
from autodecoder.io.pictures import plt, save_figure
from autodecoder.microscopy.datasets import read_frame
from autodecoder.model.checkpoints import load_format
from autodecoder.realism.config import RealismConfig, build_config, changed_settings
from autodecoder.realism.data import FrameCache, Intensity, PatchSampler, measure_intensity, open_images
from autodecoder.realism.networks import (adversarial_loss, build_discriminators, build_generators, halo,
                                          receptive_radius, require_monai)

FORMAT = "autodecoder-realism/1"
CHECKPOINT = "checkpoint.pth"
RECORD = "realism.json"
LOSS_PLOT = "loss.png"
STOP_MESSAGE = "stopping after this step: saving the checkpoint (Ctrl-C again to abort without saving)"
#: Columns of the loss history (reconstruction: the cycle terms unpaired, L1 paired).
LOSSES = ("step", "adversarial", "discriminator", "reconstruction", "identity")
#: Bytes of activations and gradients per patch voxel and first-level channel (measured, with a margin).
BYTES_PER_VOXEL_CHANNEL = 160

Log = Callable[[str], Any]


def load_checkpoint(folder: Path) -> dict[str, Any]:
    """A run folder's ``checkpoint.pth`` (tensors and plain values only); one-line errors otherwise."""
    path = Path(folder) / CHECKPOINT
    if not Path(folder).is_dir():
        raise UserError(f"{folder}: no such folder (expected a realism run folder written by realism.py train)")
    if not path.is_file():
        raise UserError(f"{folder}: not a realism run folder (no {CHECKPOINT} written by realism.py train)")
    return load_format(path, FORMAT, "a checkpoint of realism.py train")


def _same_sources(saved: dict[str, str | None], now: dict[str, str | None]) -> None:
    for key, old in saved.items():
        if old != now.get(key):
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag} {now.get(key)}: the run being resumed was trained on {old}; give the same "
                            "data, or start a new run in another folder")


def _learning_rate(config: RealismConfig, base: float, step: int) -> float:
    """Constant until ``decay_from`` of the steps, then linearly down to zero after the last step."""
    start = int(config.decay_from * config.steps)
    return base if step < start else base * (config.steps - step) / max(config.steps - start, 1)


def _real_example(frames: list, intensity: Intensity) -> torch.Tensor:
    """The middle z slice of the first real frame (at most 256 × 256 of its centre), kept for the
    before/after picture of ``apply``."""
    image = read_frame(frames[0])
    plane = image[image.shape[0] // 2]
    y0, x0 = max(0, (plane.shape[0] - 256) // 2), max(0, (plane.shape[1] - 256) // 2)
    return torch.from_numpy(plane[y0:y0 + 256, x0:x0 + 256].astype(np.float32))


def _step(config: RealismConfig, gens: torch.nn.ModuleDict, discs: torch.nn.ModuleDict, opt_g: torch.optim.Optimizer,
          opt_d: torch.optim.Optimizer, adv: Any, batch: dict[str, torch.Tensor]) -> list[float]:
    """One training step on ``batch`` (patches ``(B, C, *patch)`` of the real images, their masks when paired,
    and of the synthetic images when unpaired): the generators with the discriminators fixed, then the
    discriminators on this step's generated patches. Returns the losses (adversarial, discriminator,
    L1 or cycle, identity)."""
    r = batch["real"]
    zero = torch.zeros((), device=r.device)
    discs.requires_grad_(False)
    if config.paired:
        m = batch["real_masks"]
        fake = gens["to_real"](m)
        loss_adv = adv(discs["real"](torch.cat([m, fake], 1))[-1], True, False)
        loss_rec = F.l1_loss(fake, r)
        loss_idt = zero
        loss_g = config.weight_adversarial * loss_adv + config.weight_l1 * loss_rec
    else:
        s = batch["synthetic"]
        fake_r, fake_s = gens["to_real"](s), gens["to_synthetic"](r)
        loss_adv = adv(discs["real"](fake_r)[-1], True, False) + adv(discs["synthetic"](fake_s)[-1], True, False)
        loss_rec = F.l1_loss(gens["to_synthetic"](fake_r), s) + F.l1_loss(gens["to_real"](fake_s), r)
        loss_idt = (F.l1_loss(gens["to_real"](r), r) + F.l1_loss(gens["to_synthetic"](s), s)
                    if config.weight_identity > 0 else zero)
        loss_g = (config.weight_adversarial * loss_adv + config.weight_cycle * loss_rec
                  + config.weight_identity * loss_idt)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()

    discs.requires_grad_(True)
    if config.paired:
        loss_d = 0.5 * (adv(discs["real"](torch.cat([m, r], 1))[-1], True, True)
                        + adv(discs["real"](torch.cat([m, fake.detach()], 1))[-1], False, True))
    else:
        loss_d = 0.5 * (adv(discs["real"](r)[-1], True, True) + adv(discs["real"](fake_r.detach())[-1], False, True)
                        + adv(discs["synthetic"](s)[-1], True, True)
                        + adv(discs["synthetic"](fake_s.detach())[-1], False, True))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    return [loss_adv.item(), loss_d.item(), loss_rec.item(), loss_idt.item()]


def plot_losses(history: list[list[float]], path: Path, title: str) -> None:
    """The loss curves (running means over 1 % of the steps) against the step."""
    h = np.asarray(history, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    width = max(1, len(h) // 100)
    names = {"reconstruction": "reconstruction (cycle / L1)"}
    for col, name in enumerate(LOSSES[1:], start=1):
        name = names.get(name, name)
        if len(h) and np.any(h[:, col] > 0):
            smooth = np.convolve(h[:, col], np.ones(width) / width, mode="valid")
            ax.plot(h[width - 1:, 0], smooth, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (before weighting)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if len(h):
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def _open_data(real: str | Path, synthetic: str | Path | None, real_masks: str | Path | None,
               config: RealismConfig, state: dict[str, Any] | None, log: Log) -> tuple[Any, dict[str, Intensity],
                                                                                   PatchSampler]:
    """The real images (and their masks), the intensity scales (measured, or the resumed run's) and the
    patch sampler over both sides; refuses inputs the mode cannot use, in one line."""
    real_set = open_images(real, real_masks, "real images", log)
    if config.paired and not real_set.has_masks:
        raise UserError(f"{real}: paired training needs masks of the real images; pass --real-masks DIR (3-D "
                        "mask TIFFs or a 4-D mask stack) or give a CTC dataset with 01_GT/SEG")
    if not config.paired and synthetic is None:
        raise UserError("--synthetic: required for unpaired training (the synthetic images to make realistic)")
    syn_set = open_images(synthetic, None, "synthetic images", log) if synthetic is not None else None
    if config.paired and syn_set is not None and not syn_set.has_masks:
        raise UserError(f"{synthetic}: a paired model translates the masks of synthetic images, but none were "
                        "found (expected a CTC dataset with 01_GT/SEG or an OME-TIFF with _labels)")
    if state is not None:
        intensities = {k: Intensity.from_dict(v) for k, v in state["intensities"].items()}
    else:
        intensities = {"real": measure_intensity(real_set.frames, config.percentiles, "real images")}
        if not config.paired:
            intensities["synthetic"] = measure_intensity(syn_set.frames, config.percentiles, "synthetic images")
    sides = {"real": FrameCache(real_set, intensities["real"], config.paired, config.cached_frames)}
    if not config.paired:
        sides["synthetic"] = FrameCache(syn_set, intensities["synthetic"], False, config.cached_frames)
    return real_set, intensities, PatchSampler(sides, config, config.seed)


@dataclass
class _Session:
    """A realism run in memory: what it was started with, its networks and optimisers, and how far it got;
    :meth:`save` writes all of it (the checkpoint, the readable record and the loss plot)."""

    out: Path
    config: RealismConfig
    sources: dict[str, str | None]
    intensities: dict[str, Intensity]
    sampler: PatchSampler
    device: torch.device
    gens: torch.nn.ModuleDict
    discs: torch.nn.ModuleDict
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    radius: int
    real_example: torch.Tensor | None = None
    history: list[list[float]] = field(default_factory=list)
    step: int = 0
    seconds: float = 0.0

    def restore(self, state: dict[str, Any]) -> None:
        """Take up the saved run exactly where it stopped (weights, optimisers, sampler, random states)."""
        self.gens.load_state_dict(state["generators"])
        self.discs.load_state_dict(state["discriminators"])
        self.opt_g.load_state_dict(state["opt_generators"])
        self.opt_d.load_state_dict(state["opt_discriminators"])
        self.sampler.restore(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.history = [list(h) for h in state["history"]]
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.real_example = state["real_example"]

    def save(self) -> None:
        dev = self.device
        snapshot = {"format": FORMAT, "version": __version__, "config": self.config.as_dict(), "sources": self.sources,
                    "step": self.step, "seconds": self.seconds, "history": self.history,
                    "intensities": {k: v.as_dict() for k, v in self.intensities.items()},
                    "receptive_radius": self.radius, "halo": halo(self.radius, self.config.down_factor),
                    "patch": list(self.sampler.patch), "real_example": self.real_example,
                    "generators": self.gens.state_dict(), "discriminators": self.discs.state_dict(),
                    "opt_generators": self.opt_g.state_dict(), "opt_discriminators": self.opt_d.state_dict(),
                    "sampler": self.sampler.state(), "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}
        with atomic_path(self.out / CHECKPOINT) as tmp:
            torch.save(snapshot, tmp)
        record = {k: v for k, v in snapshot.items() if k in ("format", "version", "config", "sources", "step",
                                                               "intensities", "receptive_radius", "halo", "patch")}
        record.update(device=str(dev), seconds_per_step=self.seconds / max(self.step, 1),
                      last_losses=dict(zip(LOSSES, self.history[-1])) if self.history else None)
        atomic_write_text(self.out / RECORD, json.dumps(record, indent=1) + "\n")
        if self.history:
            plot_losses(self.history, self.out / LOSS_PLOT,
                        f"realism ({self.config.mode}, {self.config.dims}-D): losses")


def _settings(out: Path, resume: bool, config_path: str | Path | None, overrides: dict[str, Any] | None,
              real: str | Path, synthetic: str | Path | None,
              real_masks: str | Path | None) -> tuple[dict | None, RealismConfig, dict[str, str | None]]:
    """The saved state (with ``resume``), the settings and the input folders of a run in ``out``; a new run
    over an existing one, and a resumed run with other settings or inputs, are refused in one line."""
    state = load_checkpoint(out) if resume else None
    if state is None and (out / CHECKPOINT).exists():
        raise UserError(f"{out}: holds a realism run already ({CHECKPOINT}); pass --resume to go on with it, "
                        "or choose another folder")
    config = build_config(config_path, overrides, saved=state["config"] if state else None)
    if state is not None and (changes := changed_settings(state["config"], config)):
        listed = "; ".join(f"{k} {json.dumps(a)} → {json.dumps(b)}" for k, a, b in changes)
        raise UserError(f"{out / CHECKPOINT}: the resumed run was trained with other settings ({listed}); "
                        "only steps, checkpoint_every and cached_frames may change")
    config.seed = resolve_seed(config.seed)
    sources = {"real": str(Path(real).resolve()), "synthetic": synthetic and str(Path(synthetic).resolve()),
               "real_masks": real_masks and str(Path(real_masks).resolve())}
    if state is not None:
        _same_sources(state["sources"], sources)
    return state, config, sources


def train(real: str | Path, synthetic: str | Path | None, out: str | Path, config_path: str | Path | None = None,
          overrides: dict[str, Any] | None = None, real_masks: str | Path | None = None, resume: bool = False,
          device: str | None = None, progress: bool = True, log: Log = print,
          ignore_memory: bool = False) -> int:
    """Train (or, with ``resume``, go on training) the realism step into the run folder ``out``.

    ``real``: real recordings (``real_masks``: their masks, for ``paired``); ``synthetic``: the
    synthetic images to make realistic (unpaired; optional when paired). ``overrides``: settings of
    :class:`RealismConfig` from the command line (None values ignored). Returns 0, or 130 after a
    stop request (the state is saved).
    """
    require_monai()
    out = ensure_writable_dir(Path(out), "realism run")
    with hold_lock(out, "the realism run", log, break_hint="pass --break-lock"):
        clean_stale_temporaries(out, log)

        # ---------------------------------------------------------------- settings and data
        state, config, sources = _settings(out, resume, config_path, overrides, real, synthetic, real_masks)
        dev = pick_device(device)
        real_set, intensities, sampler = _open_data(real, synthetic, real_masks, config, state, log)
        check_memory(BYTES_PER_VOXEL_CHANNEL * config.batch * int(np.prod(sampler.patch)) * config.channels[0]
                     * (2 if config.paired else 6), dev, f"realism training in {out}",
                     "use a smaller --patch or --batch", ignore_memory, log)

        # ---------------------------------------------------------------- networks and optimisers
        torch.manual_seed(config.seed)
        gens, discs = build_generators(config).to(dev), build_discriminators(config).to(dev)
        run = _Session(out, config, sources, intensities, sampler, dev, gens, discs,
                       torch.optim.Adam(gens.parameters(), lr=config.lr_generator, betas=(config.beta1, config.beta2)),
                       torch.optim.Adam(discs.parameters(), lr=config.lr_discriminator,
                                        betas=(config.beta1, config.beta2)),
                       receptive_radius(gens["to_real"], config.dims, config.down_factor))
        if state is not None:
            run.restore(state)
            log(f"resuming {out} at step {run.step} of {config.steps}")
        else:
            run.real_example = _real_example(real_set.frames, intensities["real"])
        adv = adversarial_loss()
        gens.train()
        discs.train()

        if run.step >= config.steps:
            log(f"nothing to do: step {run.step} of {config.steps} already done (raise --steps to go on)")
            return 0
        log(f"realism ({config.mode}, {config.dims}-D) in {out}: steps {run.step + 1}…{config.steps}, patches "
            f"{'×'.join(map(str, sampler.patch))} × {config.batch}, seed {config.seed}, device {dev}, receptive "
            f"radius {run.radius} voxels, generator "
            f"{format_bytes(4 * sum(p.numel() for p in gens['to_real'].parameters()))} of weights")

        # ---------------------------------------------------------------- the loop
        bar = tqdm(total=config.steps, initial=run.step, unit="step", disable=not progress, dynamic_ncols=True,
                   desc="realism")
        with stop_requests(STOP_MESSAGE) as stop, bar:
            while run.step < config.steps:
                t0 = time.time()
                for opt, base in ((run.opt_g, config.lr_generator), (run.opt_d, config.lr_discriminator)):
                    for group in opt.param_groups:
                        group["lr"] = _learning_rate(config, base, run.step)
                batch = {k: v.to(dev) for k, v in sampler.draw().items()}
                losses = _step(config, gens, discs, run.opt_g, run.opt_d, adv, batch)
                run.step += 1
                run.seconds += time.time() - t0
                row = [float(run.step), *losses]
                run.history.append(row)
                bar.update(1)
                bar.set_postfix(G=f"{row[1]:.3f}", D=f"{row[2]:.3f}", **{"L1" if config.paired else "cyc":
                                                                          f"{row[3]:.3f}"})
                if run.step % config.checkpoint_every == 0 or run.step == config.steps or stop.requested:
                    run.save()
                if stop.requested and run.step < config.steps:
                    log(f"interrupted at step {run.step} of {config.steps}: saved {out / CHECKPOINT}; "
                        "resume with --resume")
                    return EXIT_STOPPED
    log(f"done: {config.steps} steps, {run.seconds / max(run.step, 1):.2f} s per step on {dev}; model in {out}")
    return 0


__all__ = ["FORMAT", "CHECKPOINT", "RECORD", "LOSS_PLOT", "load_checkpoint", "plot_losses", "train"]
