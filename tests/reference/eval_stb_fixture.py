"""An STB-shaped fixture for tests/test_eval_stb.cpp, and what spec section 5 says a loader
must make of it, computed here with numpy and OpenCV.

usage: eval_stb_fixture.py OUT_DIR [REAL_BBOXES_MAT]

OUT_DIR/stb/B1Counting/SK_color_<i>.png, OUT_DIR/stb/B1Random/SK_color_<i>.png   640x480 frames
OUT_DIR/stb/labels/B1Counting_SK.mat   handPara 3x21xF, mm, depth camera, STB joint order;
                                       written like MATLAB -v7 (zlib miCOMPRESSED)
OUT_DIR/stb/labels/B1Random_SK.mat     the same, written by scipy.io.savemat (plain)
OUT_DIR/bboxes.mat                     bboxes (F_total x 4, float32 [x, y, w, h]), some
                                       fractional, negative or leaving the image
Expected values (little-endian float64, C order):
  expected_pose.bin (N,21,3) cm   expected_root.bin (N,3)   expected_scale.bin (N,)
  expected_bbox.bin (N,4)         expected_crop_<i>.png (256x256, the release's crop)
Metrics check: est_pose.bin (N,21,3) cm = ground truth + noise, and metrics.txt with the
numpy metrics (float.hex): frame errors, mean, per joint, root-relative, PCK 20..50 mm, AUC.
With REAL_BBOXES_MAT (the release's STB_eval_bboxes.mat): OUT_DIR/stb_full/labels/ gets
1500-frame label files for both sequences (no images) and expected_real_bbox.bin (3000,4)
the release's boxes truncated to int.
"""
import os
import sys
import zlib

import cv2
import numpy as np
import scipy.io as sio

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_mat_make as mm  # noqa: E402  (MAT v5 element builder)

SEQS = [("B1Counting", 3), ("B1Random", 4)]
STB_NAMES = (["palm"] + [f"little_{i}" for i in range(1, 5)] + [f"ring_{i}" for i in range(1, 5)]
             + [f"middle_{i}" for i in range(1, 5)] + [f"index_{i}" for i in range(1, 5)]
             + [f"thumb_{i}" for i in range(1, 5)])
OUR_NAMES = (["wrist"] + [f"thumb_{i}" for i in range(1, 5)] + [f"index_{i}" for i in range(1, 5)]
             + [f"middle_{i}" for i in range(1, 5)] + [f"ring_{i}" for i in range(1, 5)]
             + [f"little_{i}" for i in range(1, 5)])


def rotation():
    r = np.array([0.00531, -0.01196, 0.00301])
    theta = np.linalg.norm(r)
    b, c, d = -r / theta * np.sin(theta / 2)
    a = np.cos(theta / 2)
    return np.array([[a * a + b * b - c * c - d * d, 2 * (b * c + a * d), 2 * (b * d - a * c)],
                     [2 * (b * c - a * d), a * a + c * c - b * b - d * d, 2 * (c * d + a * b)],
                     [2 * (b * d + a * c), 2 * (c * d - a * b), a * a + d * d - b * b - c * c]])


def convert(label_mm):
    """(21, 3) STB order, depth camera, mm -> pose (21, 3) cm in our order, root, scale."""
    T = np.array([-24.0381, -0.4563, -1.2326])
    xyz = (label_mm - T) @ rotation() / 10.0
    order = [STB_NAMES.index("palm" if n == "wrist" else n) for n in OUR_NAMES]
    pose = xyz[order].copy()
    ring1 = pose[OUR_NAMES.index("ring_1")]
    pose[0] = ring1 + 2 * (pose[0] - ring1)
    scale = np.linalg.norm(pose[OUR_NAMES.index("middle_2")] - pose[OUR_NAMES.index("middle_1")])
    return pose, pose[0].copy(), scale


def crop_resize(img, box):
    x, y, w, h = box
    out = np.zeros((h, w, 3), np.uint8)
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        out[y0 - y:y1 - y, x0 - x:x1 - x] = img[y0:y1, x0:x1]
    return cv2.resize(out, (256, 256))


def compressed_mat(path, name, arr):
    b = mm.Builder("<")
    el = b.numeric(name, mm.mx["DOUBLE"], arr, mm.mi["DOUBLE"])
    with open(path, "wb") as f:
        f.write(mm.header("MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: fixture", "<"))
        z = zlib.compress(el)
        f.write(b.u32(mm.mi["COMPRESSED"]) + b.u32(len(z)) + z)


def metrics(est, gt, thresholds):
    err = np.linalg.norm(est - gt, axis=2) * 10.0  # (N, 21) mm
    frame = err.mean(axis=1)
    rel = np.linalg.norm((est - est[:, :1]) - (gt - gt[:, :1]), axis=2)[:, 1:] * 10.0
    pck = np.array([(err <= t).mean() for t in thresholds])
    auc = np.trapz(pck, thresholds) / (thresholds[-1] - thresholds[0])
    return frame, frame.mean(), err.mean(axis=0), rel.mean(), pck, auc


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(2019)
    root = os.path.join(out, "stb")
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    poses, roots, scales, frames = [], [], [], []
    for s, (seq, n) in enumerate(SEQS):
        os.makedirs(os.path.join(root, seq), exist_ok=True)
        labels = np.zeros((3, 21, n))
        for i in range(n):
            palm = np.array([rng.uniform(-80, 80), rng.uniform(-60, 60), rng.uniform(300, 600)])
            label = palm + rng.normal(0, 40, (21, 3))
            label[0] = palm
            labels[:, :, i] = label.T
            small = rng.integers(0, 256, (31, 41, 3), dtype=np.uint8)
            img = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
            img = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(os.path.join(root, seq, f"SK_color_{i}.png"), img)
            frames.append(img)
            p, r, sc = convert(label)
            poses.append(p)
            roots.append(r)
            scales.append(sc)
        path = os.path.join(root, "labels", f"{seq}_SK.mat")
        if s == 0:
            compressed_mat(path, "handPara", labels)
        else:
            sio.savemat(path, {"handPara": labels})
    N = len(poses)
    boxes = np.array([[100.4, 50.9, 245.7, 245.2], [-30.6, -20.2, 260.9, 260.1], [500.2, 380.7, 200.5, 200.5],
                      [0, 0, 640, 480], [-200.9, 100, 250, 250.9], [320.5, 240.5, 150.2, 150.8],
                      [410, 10.1, 255, 300]], np.float32)[:N]
    sio.savemat(os.path.join(out, "bboxes.mat"), {"bboxes": boxes})
    ibox = boxes.astype(np.int64)  # truncation toward zero, as int() does
    for i in range(N):
        cv2.imwrite(os.path.join(out, f"expected_crop_{i}.png"), crop_resize(frames[i], ibox[i]))
    gt = np.array(poses)
    np.asarray(gt, "<f8").tofile(os.path.join(out, "expected_pose.bin"))
    np.asarray(roots, "<f8").tofile(os.path.join(out, "expected_root.bin"))
    np.asarray(scales, "<f8").tofile(os.path.join(out, "expected_scale.bin"))
    np.asarray(ibox, "<f8").tofile(os.path.join(out, "expected_bbox.bin"))

    if len(sys.argv) > 2:
        full = os.path.join(out, "stb_full", "labels")
        os.makedirs(full, exist_ok=True)
        for seq, _ in SEQS:
            sio.savemat(os.path.join(full, f"{seq}_SK.mat"), {"handPara": rng.normal(0, 50, (3, 21, 1500)) + 400})
        real = sio.loadmat(sys.argv[2])["bboxes"]
        np.asarray(real.astype(np.int64), "<f8").tofile(os.path.join(out, "expected_real_bbox.bin"))

    # Metrics on a larger random set: many frames of GT + noise, some joints far off.
    M = 500
    gt_m = rng.normal(0, 5, (M, 21, 3)) + np.array([0, 0, 50])
    est_m = gt_m + rng.normal(0, 1.2, (M, 21, 3))
    far = rng.random((M, 21)) < 0.05
    est_m[far] += rng.normal(0, 6, (far.sum(), 3))
    est_m[:, 0] = gt_m[:, 0] + rng.normal(0, 0.3, (M, 3))
    np.asarray(gt_m, "<f8").tofile(os.path.join(out, "metrics_gt.bin"))
    np.asarray(est_m, "<f8").tofile(os.path.join(out, "metrics_est.bin"))
    thresholds = np.arange(20, 51, dtype=np.float64)
    frame, mean, joint, rel, pck, auc = metrics(est_m, gt_m, thresholds)
    with open(os.path.join(out, "metrics.txt"), "w") as f:
        f.write(f"frames {M}\n")
        f.write("frame " + " ".join(float(x).hex() for x in frame) + "\n")
        f.write(f"mean {float(mean).hex()}\n")
        f.write("joint " + " ".join(float(x).hex() for x in joint) + "\n")
        f.write(f"rel {float(rel).hex()}\n")
        f.write("pck " + " ".join(float(x).hex() for x in pck) + "\n")
        f.write(f"auc {float(auc).hex()}\n")


if __name__ == "__main__":
    main()
