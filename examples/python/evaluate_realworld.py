#!/usr/bin/env python3
"""The release's real-world test set (583 crops) evaluated through the Python module: the
release's protocol (ground-truth camera, crop box, root joint and scale given; spec
section 5) and its metric, the mean over frames of the mean distance of the 21 joints (mm).
The same numbers as `hand_eval --dataset realworld` on the same weights and frames.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/evaluate_realworld.py \\
        --data ../shared/data/hand-graph-cnn/real_world_testset \\
        --weights weights/hand_graph_stb.safetensors [--limit N] [--threads 2] [--json OUT]

The images in images/ are the 256 x 256 crops already: each goes to the network as it is,
placed in its frame by params.mat's bbox (truncated to whole pixels, as hand_eval does) with
the frame's camera (cam_param), the root joint (pose_root) and the scale (pose_scale).

--decoder: cv2 (default: cv2.imread, libjpeg) or handgraph (handgraph.read_image: stb_image,
the decoder of hand_eval). The two JPEG decoders differ by a few grey levels on some pixels,
which moves the estimates a little: to reproduce hand_eval to the last digit on the JPEGs, use
--decoder handgraph; on lossless images (PNG) both give the same pixels.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import scipy.io as sio

import handgraph


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="real_world_testset folder (params.mat, pose_gt.mat, images/)")
    ap.add_argument("--weights", required=True, help="weight file (tools/convert_weights.py)")
    ap.add_argument("--limit", type=int, default=0, help="first N frames only (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="threads of the context (default 2)")
    ap.add_argument("--batch", type=int, default=8, help="crops per estimate_batch call (default 8)")
    ap.add_argument("--decoder", choices=("cv2", "handgraph"), default="cv2")
    ap.add_argument("--json", help="write mean_error_mm, frames and per-frame errors here")
    args = ap.parse_args()

    params = sio.loadmat(os.path.join(args.data, "params.mat"))
    gt = sio.loadmat(os.path.join(args.data, "pose_gt.mat"))["pose_gt"].astype(np.float64)  # N x 21 x 3, cm
    paths = [str(p).rstrip(" \0") for p in params["image_path"]]  # a char matrix: rows padded
    cam = params["cam_param"].astype(np.float64)               # fx, fy, u0, v0
    bbox = np.trunc(params["bbox"].astype(np.float64))         # x, y, w, h: whole pixels
    root = params["pose_root"].astype(np.float64)              # cm
    scale = params["pose_scale"].reshape(-1).astype(np.float64)  # cm (stored as uint8)
    n = len(paths) if args.limit <= 0 else min(args.limit, len(paths))

    def read(path):
        img = cv2.imread(path, cv2.IMREAD_COLOR) if args.decoder == "cv2" else handgraph.read_image(path)
        if img is None or img.shape != (256, 256, 3):
            sys.exit("error: %s is unreadable or not a 256x256 crop" % path)
        return img

    model = handgraph.Model(args.weights)
    context = handgraph.Context(args.threads)
    frame_error = []
    for start in range(0, n, args.batch):
        idx = np.arange(start, min(n, start + args.batch))
        crops = [read(os.path.join(args.data, paths[i])) for i in idx]
        results = model.estimate_batch(crops, crop_box=bbox[idx], camera=cam[idx], root=root[idx], scale=scale[idx],
                                       context=context)
        for i, r in zip(idx, results):
            d = r.pose_xyz.astype(np.float64) - gt[i]
            joint_mm = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]) * 10.0
            frame_error.append(joint_mm.mean())
    mean_error = float(np.mean(frame_error))
    print("real-world test set, %d frames, %s: mean error %.17g mm" % (n, args.decoder, mean_error))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"frames": n, "decoder": args.decoder, "weights": args.weights, "mean_error_mm": mean_error,
                       "frame_error_mm": [float(e) for e in frame_error]}, f, indent=1)


if __name__ == "__main__":
    main()
