#!/usr/bin/env python3
"""A test video for hand_track (README, "Video: tracked hands"): a real-world crop of the
release's test set (not redistributable: the video stays on your machine) moving over a
noisy gradient, 640x480 at 30 frames/s, H.264 (or any encoder ffmpeg picks for OUT's name).

    /usr/bin/python3 tools/make_track_video.py out/hand60.mp4 [--frames 60] [--crop 00150]

Prints each frame's hand box (x, y, w, h) as JSON on stdout. Needs numpy, cv2 and ffmpeg.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(HERE, "..", "..", "shared", "data", "hand-graph-cnn")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--crop", default="00150", help="real-world test frame (images/NNNNN.jpg)")
    a = ap.parse_args()
    src = os.path.join(SHARED, "real_world_testset", "images", a.crop + ".jpg")
    hand = cv2.imread(src)
    if hand is None:
        sys.exit("error: cannot read " + src)
    hand = cv2.resize(hand, (220, 220))
    rng = np.random.RandomState(1)
    y, x = np.mgrid[0:480, 0:640]
    t = ((x / 640 + y / 480) / 2)[..., None]
    boxes = []
    with tempfile.TemporaryDirectory() as tmp:
        n = max(2, a.frames)
        for i in range(n):
            img = np.clip(np.array([80, 120, 160]) * (1 - t) + np.array([170, 90, 60]) * t + rng.randint(-10, 11, (480, 640, 3)), 0, 255).astype(np.uint8)
            xx = int(30 + 350 * (0.5 - 0.5 * np.cos(i / (n - 1) * 2 * np.pi)))
            yy = int(60 + 150 * (0.5 - 0.5 * np.cos(i / (n - 1) * np.pi)))
            img[yy:yy + 220, xx:xx + 220] = hand
            boxes.append([xx, yy, 220, 220])
            cv2.imwrite(os.path.join(tmp, "f%04d.png" % i), img)
        p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-framerate", "30", "-i", os.path.join(tmp, "f%04d.png"), "-pix_fmt", "yuv420p", a.out])
        if p.returncode != 0:
            sys.exit("error: ffmpeg failed")
    print(json.dumps(boxes))


if __name__ == "__main__":
    main()
