"""The segmentation-transfer benchmark's parts: instances from class probabilities, CTC results
scored by py-ctcmetrics against hand-computed SEG and DET, and a tiny end-to-end run.

Runtime: about 5 s on 2 cores, plus importing torch and MONAI (the two end-to-end runs most of it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from autodecoder.evaluation.ctc_scores import score_result, validate_result, write_result
from autodecoder.evaluation.segmentation import CLASSES, SegmentationSettings, class_targets, \
    instances_from_probabilities
from autodecoder.evaluation.transfer import TransferSettings, run_transfer, summarise
from autodecoder.microscopy.ctc import CTCWriter, write_result_layout

pytest.importorskip("ctc_metrics")  # test dependency py-ctcmetrics
pytest.importorskip("monai")


def two_touching_spheres() -> np.ndarray:
    """Labels (Z, Y, X): sphere 1 (radius 7) and sphere 2 (radius 5) whose faces touch; 0 elsewhere."""
    z, y, x = np.indices((20, 28, 40), dtype=np.float32)
    a = (z - 10) ** 2 + (y - 14) ** 2 + (x - 12.2) ** 2 <= 7 ** 2
    b = (z - 10) ** 2 + (y - 14) ** 2 + (x - 24.0) ** 2 <= 5 ** 2
    labels = np.where(a, 1, np.where(b, 2, 0))
    assert ((labels[:, :, :-1] == 1) & (labels[:, :, 1:] == 2)).sum() >= 5  # they share faces
    return labels


def one_hot(targets: np.ndarray) -> np.ndarray:
    return np.stack([(targets == k) for k in range(len(CLASSES))]).astype(np.float32)


def test_touching_spheres_become_two_instances_with_their_volumes():
    labels = two_touching_spheres()
    volumes = np.bincount(labels.ravel())[1:]
    # exact probabilities: every voxel goes back to its sphere
    found = instances_from_probabilities(one_hot(class_targets(labels)), min_voxels=10)
    assert found.max() == 2 and ndimage.label(found > 0, np.ones((3, 3, 3)))[1] == 1  # one blob, two cells
    pairs = {(int(f), int(t)) for f, t in zip(found[labels > 0], labels[labels > 0])}
    assert len(pairs) == 2 and sorted(np.bincount(found.ravel())[1:]) == sorted(volumes)
    # blurred probabilities, as a network gives: still two cells, each at least 98 % inside its own
    # sphere and covering at least 92 % of it (the blur rounds off the surface of the small one)
    smooth = np.stack([ndimage.gaussian_filter(p, 0.8) for p in one_hot(class_targets(labels))])
    found = instances_from_probabilities(smooth / smooth.sum(0), min_voxels=10)
    assert found.max() == 2
    for t in (1, 2):
        mine = found == np.bincount(found[labels == t]).argmax()
        assert np.sum(mine & (labels == t)) >= 0.98 * mine.sum()
        assert np.sum(mine & (labels == t)) >= 0.92 * volumes[t - 1]


def boxes_dataset(root) -> list[np.ndarray]:
    """A CTC ground truth of 3 box cells in 4 frames (Z, Y, X) = (8, 24, 40); SEG in frames 0 and 2."""
    frames = []
    for t in range(4):
        lab = np.zeros((8, 24, 40), np.uint16)
        lab[1:6, 2:12, 2:12] = 1  # 5 × 10 × 10 = 500 voxels
        lab[1:6, 2:12, 20 + t:30 + t] = 2
        lab[2:7, 14:22, 4:14] = 3
        frames.append(lab)
    w = CTCWriter(root, 1, 4)
    for t, lab in enumerate(frames):
        w.write_frame(t, lab * 100, lab, write_seg=t in (0, 2))
    w.write_tracks([(1, 0, 3, 0), (2, 0, 3, 0), (3, 0, 3, 0)])
    return frames


def test_scores_of_a_perfect_result_and_of_one_with_a_missing_cell(tmp_path):
    frames = boxes_dataset(tmp_path)
    perfect = write_result_layout(tmp_path)
    assert validate_result(perfect)
    assert score_result(perfect, tmp_path / "01_GT") == {"SEG": 1.0, "DET": 1.0}

    result = [f.copy() for f in frames]
    for t in (1, 2, 3):
        result[t][result[t] == 3] = 0  # cell 3 missed in frames 1-3
    result[0][5, 2:12, 2:12] = 0  # cell 1 in frame 0 loses a 100-voxel slice: IoU 400/500
    res = write_result(tmp_path / "res" / "01_RES", iter(result), 4)
    assert validate_result(res)
    # DET: 12 reference markers (3 cells x 4 frames), 3 missed at weight 10: 1 - 30/120.
    # SEG: 6 annotated cells (frames 0 and 2): IoU 0.8, 1, 1 | 1, 1, 0 (missed) -> 4.8 / 6.
    scores = score_result(res, tmp_path / "01_GT")
    assert scores["DET"] == pytest.approx(1 - 30 / 120, abs=1e-12)
    assert scores["SEG"] == pytest.approx(4.8 / 6, abs=1e-12)
    # the same without TRA (SEG only): no DET
    seg_only = tmp_path / "seg_only" / "01_GT"
    shutil.copytree(tmp_path / "01_GT" / "SEG", seg_only / "SEG")
    assert score_result(res, seg_only) == {"SEG": pytest.approx(4.8 / 6, abs=1e-12), "DET": None}


def test_summary_is_mean_and_sample_sd_over_seeds():
    rows = [{"stage": "masks", "seed": s, "SEG": v, "DET": 1.0} for s, v in enumerate((0.5, 0.6, 0.7))]
    row = summarise(rows, ["masks"])[0]
    assert row["seeds"] == 3 and row["SEG_mean"] == pytest.approx(0.6) and row["SEG_sd"] == pytest.approx(0.1)
    assert row["DET_sd"] == 0.0


def test_tiny_end_to_end_run_writes_a_valid_ctc_result(tmp_path):
    torch.set_num_threads(1)
    seg = SegmentationSettings(channels=(4, 8), strides=(2,), patch_zyx=(16, 32, 32), batch=1, steps=3)
    settings = TransferSettings(shape_zyx=(16, 40, 40), voxel_size_xyz=(0.75, 0.75, 0.75), cube_size_um=10.0,
                                frames=3, cells=2, phantom_grid=24, segmentation=seg)
    outcome = run_transfer(settings, ["masks"], 1, tmp_path, torch.device("cpu"), progress=False, log=lambda s: None)
    res = tmp_path / "runs" / "masks" / "seed_0" / "01_RES"
    assert sorted(p.name for p in res.iterdir()) == ["mask000.tif", "mask001.tif", "mask002.tif", "res_track.txt"]
    from ctc_metrics import validate_sequence
    assert validate_sequence(str(res), threads=1)["Valid"] == 1
    assert len(outcome.rows) == 1 and 0 <= outcome.rows[0]["SEG"] <= 1 and 0 <= outcome.rows[0]["DET"] <= 1
    assert (tmp_path / "table.md").read_text().startswith("Test data: held-out synthetic")
    assert all(f.is_file() for f in outcome.files)


def test_realism_stage_trains_on_unlabelled_data_and_translates_the_training_data(tmp_path, monkeypatch):
    """Stage 5 through the realism step's ``train`` and ``apply`` (stand-ins here; ``apply`` copies the images):
    trained once on the unlabelled synthetic set, never on the test set; applied to the full pipeline's data."""
    from autodecoder.evaluation import transfer
    calls = []

    def train(real, synthetic, out, overrides=None, **kw):
        calls.append(("train", Path(real), Path(synthetic), Path(out), overrides, kw))
        (tmp_path / "model_written").write_text("x")
        return 0

    def apply(model, source, out, **kw):
        calls.append(("apply", Path(model), Path(source), Path(out), None, kw))
        shutil.copytree(source, out)
        return Path(out)
    monkeypatch.setattr(transfer, "realism_train", train)
    monkeypatch.setattr(transfer, "realism_apply", apply)
    monkeypatch.setattr(transfer, "realism_available", lambda: True)
    torch.set_num_threads(1)
    seg = SegmentationSettings(channels=(4, 8), strides=(2,), patch_zyx=(16, 32, 32), batch=1, steps=2)
    settings = TransferSettings(shape_zyx=(16, 40, 40), voxel_size_xyz=(0.75, 0.75, 0.75), cube_size_um=10.0,
                                frames=2, cells=2, phantom_grid=24, segmentation=seg, realism_steps=7)
    outcome = run_transfer(settings, ["realism"], 1, tmp_path / "out", torch.device("cpu"), progress=False,
                           log=lambda s: None)
    data = tmp_path / "out" / "data"
    assert [c[0] for c in calls] == ["train", "apply"]
    _, real, synthetic, model, overrides, kw = calls[0]
    assert (real, synthetic, model) == (data / "unlabelled", data / "train_texture", tmp_path / "out" / "realism_model")
    assert overrides["steps"] == 7 and "seed" in overrides and kw["progress"] is False
    assert calls[1][1:4] == (tmp_path / "out" / "realism_model", data / "train_texture", data / "train_realism")
    assert outcome.rows[0]["stage"] == "realism" and outcome.rows[0]["valid"] == 1
