"""Run the pure layer on fixed inputs and print the results as JSON, so the tests can compare Blender's Python
(numpy 2.x in Blender 5) with the test interpreter (numpy 1.26): same numbers, same RLE bytes, same draws.

``python shared_probe.py OUT.json`` or ``blender -b --factory-startup -P shared_probe.py -- OUT.json``.
"""

import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from shared import post  # noqa: E402
from shared.annotate import InstanceInfo, annotate_frame  # noqa: E402
from shared.coco import decode_rle, encode_instance_map, encode_rle, mask_to_polygons  # noqa: E402
from shared.config import CameraRandomizer, Filters, LightRandomizer, Range  # noqa: E402
from shared.raster import K_from_blender, project_points, silhouette  # noqa: E402
from shared.sampling import (  # noqa: E402
    SurfaceRect,
    frame_rng,
    place_on_surfaces,
    sample_camera,
    sample_free_pose,
    sample_lights,
    sample_range,
)


def probe() -> dict:
    out = {"numpy": np.__version__}
    yy, xx = np.mgrid[0:48, 0:64]
    im = np.zeros((48, 64), np.uint16)
    im[(yy - 20) ** 2 + (xx - 20) ** 2 < 150] = 1
    im[5:30, 25:60] = 2
    im[40:48, 50:64] = 300
    out["rle"] = encode_rle(im == 1)
    out["instances"] = encode_instance_map(im, [1, 2, 300])
    out["decoded_sum"] = int(decode_rle(out["rle"]).sum())
    out["polygons"] = mask_to_polygons(im == 2)
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) % 256], -1).astype(np.uint8)
    depth = (1.0 + xx / 64.0).astype(np.float32)
    infos = [InstanceInfo(i, i % 2, "c", f"o{i}", 500, 450, 2.0) for i in (1, 2, 300)]
    out["annotations"] = annotate_frame(im, infos, depth, rgb, Filters(min_visible_pixels=1), 3)
    K = K_from_blender(35.0, 36.0, "AUTO", 64, 48, 0.1, 0.0)
    cam = np.eye(4)
    cam[:3, 3] = (0.2, 0.1, 4.0)
    px, d = project_points(K, cam, np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0.5], [-1, 1, 0]], float))
    total, mask = silhouette(px, d, np.array([[0, 1, 2], [0, 2, 3]]), 64, 48)
    out["silhouette"] = [total, int(mask.sum())]
    rng = frame_rng(12345, 7)
    out["ranges"] = [sample_range(rng, Range(1, 5, dist)) for dist in ("uniform", "normal", "loguniform")]
    out["camera"] = list(vars(sample_camera(rng, CameraRandomizer(), np.zeros(3))).values())
    out["lights"] = [list(vars(x).values()) for x in sample_lights(rng, LightRandomizer(), (0, 0, 0))]
    out["place"] = place_on_surfaces(rng, [0.2, 0.3], [SurfaceRect(-1, 1, -1, 1, 0.7)], 0.01, 50)
    out["free"] = sample_free_pose(rng, (0, 0, 0), (1, 1, 1))
    img = rgb.astype(np.float32) / 255.0
    out["post"] = [
        float(post.gaussian_blur(img, 1.5).sum()),
        float(post.add_noise(frame_rng(1, 1), img, 0.02).sum()),
        float(post.rain(frame_rng(1, 2), img, 0.5).sum()),
        float(post.snow(frame_rng(1, 3), img, 0.5).sum()),
        float(post.fog(img, 0.4, depth).sum()),
    ]
    return out


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    with open(args[0], "w") as f:
        json.dump(probe(), f)
    print("PROBE_DONE")
