"""The real chessboard set built from Debian's opencv-doc photos: order, geometry, calibration, files.

Skipped when the package is absent (``make real-photos`` installs it); the ground truth is recomputed here from
the photos, never read from a committed file.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from trainer.bench import boards_real as br
from trainer.bench.errors import BenchError
from trainer.evaluation.keypoints import BOARD_SIGMA, board_pose_errors, keypoint_errors, oks_ap

HAVE_PHOTOS = os.path.isfile(os.path.join(br.DEFAULT_SOURCE_DIR, "left01.jpg"))
needs_photos = pytest.mark.skipif(not HAVE_PHOTOS, reason=f"no real chessboard photos: {br.INSTALL_HINT}")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not HAVE_PHOTOS:
        pytest.skip(f"no real chessboard photos: {br.INSTALL_HINT}")
    out = tmp_path_factory.mktemp("real_boards")
    notes: list[str] = []
    summary = br.build_real_boards(str(out), note=notes.append)
    with open(summary["annotations"], encoding="utf-8") as f:
        data = json.load(f)
    return {"dir": str(out), "summary": summary, "data": data, "notes": notes}


def _kp(ann) -> np.ndarray:
    return np.asarray(ann["keypoints"], float).reshape(-1, 3)


def test_a_missing_package_names_it(tmp_path):
    with pytest.raises(BenchError, match="apt-get install opencv-doc"):
        br.find_real_photos(str(tmp_path / "nowhere"))
    (tmp_path / "left01.jpg").write_bytes(b"")
    with pytest.raises(BenchError, match=r"lacks right01.jpg.*apt-get install opencv-doc"):
        br.find_real_photos(str(tmp_path))


def test_folds_keep_pairs_together_and_are_deterministic():
    per_image = [3, 3, 1, 1, 2, 2, 5, 5, 4, 4]
    folds = br.folds(per_image, k=2)
    assert folds == [[1, 3, 5], [2, 4]] and folds == br.folds(sorted(set(per_image)), k=2)
    assert br.folds([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]) == [[1, 3, 5, 7, 9, 12, 14], [2, 4, 6, 8, 11, 13]]
    with pytest.raises(BenchError, match="k=6"):
        br.folds(per_image, k=6)


def test_skeleton_is_the_grid():
    assert len(br.SKELETON) == 8 * 6 + 9 * 5
    for a, b in br.SKELETON:
        (ra, ca), (rb, cb) = divmod(a - 1, 9), divmod(b - 1, 9)
        assert abs(ra - rb) + abs(ca - cb) == 1
    assert br.KEYPOINT_NAMES[0] == "r0c0" and br.KEYPOINT_NAMES[8] == "r0c8" and br.KEYPOINT_NAMES[-1] == "r5c8"


@needs_photos
def test_the_26_photos_in_13_pairs():
    photos = br.find_real_photos()
    assert len(photos) == 26
    assert sorted({p.pair for p in photos}) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]
    for pair in {p.pair for p in photos}:
        assert sorted(p.name for p in photos if p.pair == pair) == [f"left{pair:02d}.jpg", f"right{pair:02d}.jpg"]
    assert "left.jpg" not in {p.name for p in photos}


def test_dataset_shape_and_pycocotools_loads_it(built):
    from pycocotools.coco import COCO

    data = built["data"]
    assert len(data["images"]) == 26 and len(data["annotations"]) == 26
    assert data["categories"][0]["keypoints"] == list(br.KEYPOINT_NAMES)
    for ann in data["annotations"]:
        kp = _kp(ann)
        assert kp.shape == (54, 3) and ann["num_keypoints"] == 54 and np.all(kp[:, 2] == 2)
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1
    coco = COCO(built["summary"]["annotations"])
    assert len(coco.getImgIds()) == 26 and len(coco.getAnnIds()) == 26
    mask = coco.annToMask(coco.loadAnns(1)[0])
    assert abs(int(mask.sum()) - data["annotations"][0]["area"]) < 0.02 * data["annotations"][0]["area"]


def test_images_are_regular_copies(built):
    folder = os.path.join(built["dir"], "images")
    names = sorted(os.listdir(folder))
    assert len(names) == 26
    for name in names:
        path = os.path.join(folder, name)
        assert not os.path.islink(path) and os.path.isfile(path)
        with open(path, "rb") as a, open(os.path.join(br.DEFAULT_SOURCE_DIR, name), "rb") as b:
            assert a.read() == b.read()


def test_pairs_stay_on_one_fold_side(built):
    images = built["data"]["images"]
    folds = br.folds([img["board"]["pair"] for img in images], k=2)
    assert sorted(folds[0] + folds[1]) == sorted({img["board"]["pair"] for img in images})
    for test_pairs in folds:
        test = [img for img in images if img["board"]["pair"] in test_pairs]
        train = [img for img in images if img["board"]["pair"] not in test_pairs]
        assert len(test) == 2 * len(test_pairs) and len(test) + len(train) == 26
        assert {img["board"]["camera"] for img in test} == {"left", "right"}
        assert {i["board"]["pair"] for i in train}.isdisjoint({i["board"]["pair"] for i in test})


def _grey_at(grey: np.ndarray, q: np.ndarray) -> float:
    return float(grey[int(round(q[1])), int(round(q[0]))])


def test_canonical_order_holds_on_every_photo(built):
    """Checked here with its own arithmetic: handedness from corners 0, 1, 9; the outward square of corner 0
    sampled at 0.25 square out along both grid directions, against the square beside it."""
    for img, ann in zip(built["data"]["images"], built["data"]["annotations"], strict=True):
        grey = cv2.imread(os.path.join(built["dir"], "images", img["file_name"]), cv2.IMREAD_GRAYSCALE)
        p = _kp(ann)[:, :2] - 0.5  # COCO -> OpenCV
        row, col = p[1] - p[0], p[9] - p[0]
        assert row[0] * col[1] - row[1] * col[0] > 0, img["file_name"]
        outward = _grey_at(grey, p[0] - 0.25 * row - 0.25 * col)
        beside = _grey_at(grey, p[0] + 0.25 * row - 0.25 * col)
        assert outward < 100 < beside, img["file_name"]


def test_stereo_pairs_agree_on_the_board_frame(built):
    """Both cameras of a pair see the same board at the same moment: if either photo had another corner 0 the
    left-to-right transform would jump; it stays within 0.5 degree and 3 mm of its median (baseline ~83 mm)."""
    boards = {}
    for img in built["data"]["images"]:
        boards.setdefault(img["board"]["pair"], {})[img["board"]["camera"]] = img["board"]
    rel_r, rel_t = [], []
    for pair in sorted(boards):
        left, right = boards[pair]["left"], boards[pair]["right"]
        rl, _ = cv2.Rodrigues(np.array(left["rvec"]))
        rr, _ = cv2.Rodrigues(np.array(right["rvec"]))
        r = rr @ rl.T
        rel_r.append(r)
        rel_t.append(np.array(right["tvec_mm"]) - r @ np.array(left["tvec_mm"]))
    t_med = np.median(rel_t, axis=0)
    assert 70 < np.linalg.norm(t_med) < 100
    assert max(np.linalg.norm(t - t_med) for t in rel_t) < 3.0
    for r in rel_r:
        angle = np.degrees(np.arccos(np.clip((np.trace(r @ rel_r[0].T) - 1) / 2, -1, 1)))
        assert angle < 0.5


def test_calibration_reprojects_below_a_pixel(built):
    rms = built["summary"]["rms_px"]
    assert set(rms) == {"left", "right"} and all(v < 1.0 for v in rms.values())
    assert built["data"]["info"]["calibration"]["left"]["rms_px"] == pytest.approx(rms["left"])
    obj = br.object_points()
    for img, ann in zip(built["data"]["images"], built["data"]["annotations"], strict=True):
        b = img["board"]
        assert b["square_mm"] == 25.0 and b["camera"] in ("left", "right")
        pix, _ = cv2.projectPoints(obj, np.array(b["rvec"]), np.array(b["tvec_mm"]), np.array(b["K"]),
                                   np.array(b["dist"]))  # fmt: skip
        err = np.linalg.norm(pix.reshape(-1, 2) + 0.5 - _kp(ann)[:, :2], axis=1)
        assert err.max() < 1.5 and np.sqrt(np.mean(err**2)) < 1.0, img["file_name"]


def test_box_and_outline_contain_every_corner(built):
    for img, ann in zip(built["data"]["images"], built["data"]["annotations"], strict=True):
        x, y, w, h = ann["bbox"]
        kp = _kp(ann)[:, :2]
        assert np.all((kp[:, 0] > x) & (kp[:, 0] < x + w) & (kp[:, 1] > y) & (kp[:, 1] < y + h))
        assert x >= 0 and y >= 0 and x + w <= img["width"] + 1e-6 and y + h <= img["height"] + 1e-6
        poly = np.asarray(ann["segmentation"][0], np.float32).reshape(-1, 1, 2)
        assert all(cv2.pointPolygonTest(poly, (float(a), float(b)), False) > 0 for a, b in kp)
        assert ann["area"] == pytest.approx(abs(cv2.contourArea(poly)), rel=1e-3)
        assert ann["area"] < w * h


def test_the_margin_constants_match_a_fresh_measurement(built):
    margins = {name: {side: {k: np.nan if v is None else v for k, v in m.items()} for side, m in sides.items()}
               for name, sides in built["summary"]["margins"].items()}  # fmt: skip
    json.dumps(built["summary"], allow_nan=False)  # the summary is plain JSON
    per_photo = [np.nanmedian([m[s]["margin"] for s in m]) for m in margins.values()]
    assert np.median(per_photo) == pytest.approx(br.WHITE_MARGIN_SQUARES, abs=0.02)
    along_row = np.nanmedian([(m["left"]["checker"] + m["right"]["checker"]) / 2 for m in margins.values()])
    along_col = np.nanmedian([(m["top"]["checker"] + m["bottom"]["checker"]) / 2 for m in margins.values()])
    assert (along_row, along_col) == (pytest.approx(br.CHECKER_EXTENT_SQUARES[0], abs=0.02),
                                      pytest.approx(br.CHECKER_EXTENT_SQUARES[1], abs=0.02))  # fmt: skip


def test_the_sheet_is_written(built):
    path = built["summary"]["sheet"]
    assert path == os.path.join(built["dir"], "ground_truth_sheet.png")
    sheet = cv2.imread(path)
    assert sheet is not None and sheet.shape[0] > 2000 and sheet.shape[1] == 4 * 480


def test_ground_truth_as_prediction_scores_perfectly(built):
    """The keypoint metrics on the real set with the ground truth as the prediction: AP 1, 0 px, and PnP from the
    corners lands on the calibrated pose."""
    data = built["data"]
    results = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0, "keypoints": a["keypoints"]}
               for a in data["annotations"]]  # fmt: skip
    assert oks_ap(data, results, [BOARD_SIGMA] * 54)["AP"] == pytest.approx(1.0)
    errors = keypoint_errors(data, results)
    assert errors["mean_px"] == 0.0 and errors["pck"]["2px"] == 1.0 and errors["matched"] == 26
    pose = board_pose_errors(data["images"], data["annotations"], results)
    assert pose["solved"] == 26 and pose["not_solved"] == 0
    assert pose["rotation_deg"]["median"] < 0.05 and pose["translation_mm"]["median"] < 0.5


@needs_photos
def test_canonical_order_ignores_how_the_grid_came_in_and_refuses_unclear_colours():
    photo = br.find_real_photos()[0]
    grey = cv2.imread(photo.path, cv2.IMREAD_GRAYSCALE)
    canon = br.detect_corners(grey, photo.name)
    g = canon.reshape(6, 9, 2)
    for variant in (g, g[:, ::-1], g[::-1, :], g[::-1, ::-1]):
        assert np.array_equal(br.canonical_order(grey, variant.reshape(54, 2), photo.name), canon)
    with pytest.raises(BenchError, match="too unclear"):
        br.canonical_order(np.full_like(grey, 128), canon, "flat grey")
    # black and white swapped: the black corner squares are now at corners 8 and 53, and of those only 53 keeps
    # the handedness, so the order turns by 180 degrees
    inverted = 255 - grey
    assert np.array_equal(br.canonical_order(inverted, canon, photo.name), g[::-1, ::-1].reshape(54, 2))
