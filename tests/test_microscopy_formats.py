"""Export formats: CTC layout scored by py-ctcmetrics, OME-TIFF, OME-Zarr, 2-D projections."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from autodecoder.experiment.errors import UserError
from autodecoder.microscopy.ctc import CTCWriter, frame_digits, write_result_layout
from autodecoder.microscopy.lineage import cells_to_label_image, track_sequence
from autodecoder.microscopy.ome import labels_path, write_ome_tiff, write_ome_zarr
from autodecoder.microscopy.projections import max_intensity_projection, project_labels, write_projection_frame

ctc_metrics = pytest.importorskip("ctc_metrics")  # test dependency py-ctcmetrics
from ctc_metrics import evaluate_sequence, validate_sequence  # noqa: E402

SHAPE, T, K = (32, 48, 48), 6, 3  # (Z, Y, X); frames; the division frame
VOXEL = (1.0, 0.5, 0.5)  # µm
GRID = np.indices(SHAPE).astype(np.float32)


def ball(centre, radius):
    return sum((g - c) ** 2 for g, c in zip(GRID, centre)) <= radius ** 2


def scene(t: int) -> np.ndarray:
    """Cell 1 divides at frame K (two balls pulled apart, a neck before K); 2 is large; 3 moves."""
    d = 3 + 2 * t
    dividing = ball((16, 16, 24 - d), 5) | ball((16, 16, 24 + d), 5)
    if t < K:
        z, y, x = GRID
        dividing |= ((z - 16) ** 2 + (y - 16) ** 2 <= 4) & (x >= 24 - d) & (x <= 24 + d)
    return cells_to_label_image({1: dividing, 2: ball((16, 35, 12), 11), 3: ball((16, 36, 38 - t), 4)}, SHAPE)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list]:
    """A CTC sequence 01 with ground truth (tracked by the lineage tracker) and its result copy."""
    root = tmp_path_factory.mktemp("ctc")
    tracks, rows = track_sequence([scene(t) for t in range(T)], VOXEL, min_volume_um3=1.0)
    rng = np.random.default_rng(0)
    writer = CTCWriter(root, 1, n_frames=T, voxel_size_zyx=VOXEL)
    for t in range(T):
        image = 100 + 500 * (tracks[t] > 0) + rng.integers(0, 20, SHAPE)
        writer.write_frame(t, image, tracks[t])
    writer.write_tracks(rows)
    write_result_layout(root, 1)
    return root, rows


def result_copy(root: Path, tmp_path: Path) -> Path:
    """A writable copy of ``01_RES`` next to a link to the ground truth."""
    res = tmp_path / "01_RES"
    shutil.copytree(root / "01_RES", res)
    return res


def score(res: Path, root: Path) -> dict:
    return evaluate_sequence(str(res), str(root / "01_GT"), metrics=["SEG", "DET", "TRA"], threads=1)


def test_ctc_layout_and_track_table(dataset):
    root, rows = dataset
    assert sorted(p.name for p in (root / "01").iterdir()) == [f"t{t:03d}.tif" for t in range(T)]
    assert (root / "01_GT/SEG/man_seg005.tif").is_file() and (root / "01_GT/TRA/man_track000.tif").is_file()
    image = tifffile.imread(root / "01/t000.tif")
    assert image.dtype == np.uint16 and image.shape == SHAPE  # one page per z slice
    lines = (root / "01_GT/TRA/man_track.txt").read_text().splitlines()
    assert lines == [f"{r.label} {r.begin} {r.end} {r.parent}" for r in sorted(rows)]
    mother = [r for r in rows if r.end == K - 1]
    assert len(mother) == 1 and sorted(r.begin for r in rows if r.parent == mother[0].label) == [K, K]
    assert frame_digits(1000) == 3 and frame_digits(1001) == 4


def test_ground_truth_validates_and_scores_one(dataset):
    root, _ = dataset
    assert validate_sequence(str(root / "01_RES"), threads=1)["Valid"] == 1
    result = score(root / "01_RES", root)
    assert (result["SEG"], result["DET"], result["TRA"]) == (1.0, 1.0, 1.0)


def graph_size(rows) -> tuple[int, int]:
    """(vertices, edges) of the CTC reference graph: one vertex per track per frame."""
    vertices = sum(r.end - r.begin + 1 for r in rows)
    edges = sum(r.end - r.begin for r in rows) + sum(1 for r in rows if r.parent)
    return vertices, edges


def test_missing_parent_link_costs_one_edge_addition(dataset, tmp_path):
    root, rows = dataset
    res = result_copy(root, tmp_path)
    daughter = next(r for r in rows if r.parent)
    text = [f"{r.label} {r.begin} {r.end} {0 if r == daughter else r.parent}" for r in rows]
    (res / "res_track.txt").write_text("\n".join(text) + "\n")
    assert validate_sequence(str(res), threads=1)["Valid"] == 1
    result = score(res, root)
    vertices, edges = graph_size(rows)
    expected = 1 - 1.5 / (10 * vertices + 1.5 * edges)  # one missing edge (EA, weight 1.5)
    assert result["DET"] == 1.0 and result["SEG"] == 1.0
    assert result["TRA"] == pytest.approx(expected, abs=1e-9) and result["TRA"] < 1


def test_eroded_mask_lowers_seg_by_its_jaccard(dataset, tmp_path):
    root, rows = dataset
    res = result_copy(root, tmp_path)
    masks = tifffile.imread(res / "mask002.tif")
    label = int(masks[16, 35, 12])  # the large cell
    cell = masks == label
    eroded = ndimage.binary_erosion(cell, iterations=2)
    jaccard = eroded.sum() / cell.sum()  # eroded lies inside the cell: |R ∩ S| / |R ∪ S|
    assert 0.5 < jaccard < 1  # still matched (> half of the reference)
    masks[cell & ~eroded] = 0
    tifffile.imwrite(res / "mask002.tif", masks)
    result = score(res, root)
    n_objects = graph_size(rows)[0]  # SEG is annotated on every frame, one object per vertex
    assert result["SEG"] == pytest.approx((n_objects - 1 + jaccard) / n_objects, abs=1e-9)
    assert result["DET"] == 1.0 and result["TRA"] == 1.0


def test_ctc_writer_refuses_bad_frames(tmp_path):
    writer = CTCWriter(tmp_path, 2, n_frames=1001)
    writer.write_frame(0, np.zeros((2, 3, 3), np.uint16), np.zeros((2, 3, 3), np.uint16))
    assert (tmp_path / "02" / "t0000.tif").is_file() and (tmp_path / "02_GT/TRA/man_track0000.tif").is_file()
    with pytest.raises(UserError, match="uint16"):
        writer.write_frame(1, np.full((2, 3, 3), 0.5), np.zeros((2, 3, 3), np.uint16))
    with pytest.raises(UserError, match="parent 7"):
        writer.write_tracks([(1, 0, 3, 7)])


def sequence(shape=(3, 4, 5, 6)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 4000, shape).astype(np.uint16)
    return images, (images > 2000).astype(np.uint16) * 7


def test_ome_tiff_calibration_and_determinism(tmp_path):
    ome_types = pytest.importorskip("ome_types")
    images, labels = sequence()
    frames = (f for f in images)  # a one-shot stream with a separate label stream
    written = write_ome_tiff(tmp_path / "a" / "seq.ome.tif", frames, (0.5, 0.25, 0.2), 30.0, "seq",
                             uuid_seed=3, labels=iter(labels), n_frames=len(images))
    assert written == [tmp_path / "a/seq.ome.tif", labels_path(tmp_path / "a/seq.ome.tif")]
    assert written[1].name == "seq_labels.ome.tif"
    for path, data in zip(written, (images, labels)):
        with tifffile.TiffFile(path) as tif:
            assert tif.is_ome and tif.series[0].axes == "TZYX"
            assert np.array_equal(tif.asarray(), data)
        pixels = ome_types.from_tiff(path).images[0].pixels
        assert (pixels.physical_size_z, pixels.physical_size_y, pixels.physical_size_x) == (0.5, 0.25, 0.2)
        assert pixels.physical_size_x_unit.value == "µm" and pixels.physical_size_z_unit.value == "µm"
        assert (pixels.time_increment, pixels.time_increment_unit.value) == (30.0, "s")
        assert (pixels.size_t, pixels.size_z, pixels.size_y, pixels.size_x) == (3, 4, 5, 6)
    again = write_ome_tiff(tmp_path / "b" / "seq.ome.tif", images, (0.5, 0.25, 0.2), 30.0, "seq",
                           uuid_seed=3, labels=labels)
    other = write_ome_tiff(tmp_path / "c" / "seq.ome.tif", images, (0.5, 0.25, 0.2), 30.0, "seq", uuid_seed=4)
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(written, again))
    assert written[0].read_bytes() != other[0].read_bytes()  # the seed sets the UUID
    assert not list(tmp_path.rglob(".*.tmp*"))  # no temporaries left behind
    with pytest.raises(UserError, match="n_frames"):
        write_ome_tiff(tmp_path / "d.ome.tif", iter(images), (1, 1, 1), 1.0)


def test_ome_zarr_round_trip(tmp_path):
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    images, labels = sequence()
    path = write_ome_zarr(tmp_path / "seq.zarr", images, labels, (0.5, 0.25, 0.2), 30.0, name="seq")
    nodes = list(Reader(parse_url(str(path)))())
    image, label = nodes[0], next(n for n in nodes if any(isinstance(s, Label) for s in n.specs))
    assert np.array_equal(np.asarray(image.data[0]), images)
    assert np.array_equal(np.asarray(label.data[0]), labels)
    scale = [[t["scale"] for t in level if t["type"] == "scale"][0]
             for level in image.metadata["coordinateTransformations"]]
    assert scale == [[30.0, 0.5, 0.25, 0.2]]
    assert [a["name"] for a in image.metadata["axes"]] == ["t", "z", "y", "x"]
    assert str(label.zarr.path).rstrip("/").endswith("labels/cells")
    with pytest.raises(UserError, match="exists"):
        write_ome_zarr(path, images, labels, (0.5, 0.25, 0.2), 30.0)


def test_ome_zarr_missing_extra_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ome_zarr", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "ome_zarr.format", None)
    with pytest.raises(UserError, match=r"pip install '\.\[zarr\]'"):
        write_ome_zarr(tmp_path / "x.zarr", np.zeros((1, 1, 2, 2), np.uint16), None, (1, 1, 1), 1.0)


def test_projections(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 60000, (5, 6, 7)).astype(np.uint16)
    labels = np.zeros((5, 6, 7), np.uint16)
    labels[0:3, :3, :3], labels[2:5, 1:4, 1:4] = 1, 2  # two cells overlap in projection
    labels[2, 1:3, 1:3] = 2
    assert np.array_equal(max_intensity_projection(image), image.max(axis=0))
    mask = project_labels(labels, image)
    for y, x in [(0, 0), (1, 1), (2, 2), (3, 3), (5, 6)]:
        column = np.where(labels[:, y, x] > 0, image[:, y, x].astype(int), -1)
        expected = labels[column.argmax(), y, x] if column.max() >= 0 else 0
        assert mask[y, x] == expected
    assert project_labels(labels)[1, 1] == 1  # without an image: the smallest z labelled voxel
    img_path, mask_path = write_projection_frame(tmp_path, 4, image, labels, n_frames=10)
    assert (img_path.name, mask_path.name) == ("img_t004.tif", "mask_t004.tif")
    for path, expected in ((img_path, image.max(axis=0)), (mask_path, mask)):
        data = tifffile.imread(path)
        assert data.dtype == np.uint16 and np.array_equal(data, expected)
