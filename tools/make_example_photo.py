#!/usr/bin/env python3
"""Writes a generated 480x360 'photo' with a hand-shaped figure (palm, five fingers) on a
gradient background: the picture of README's worked example ("A photo in"), which must be
redistributable (the release's test images are not). Python standard library and numpy
with cv2 (Debian's python3-opencv): /usr/bin/python3 tools/make_example_photo.py OUT.png
Prints the figure's box (x,y,w,h) for hand_demo --hand-box."""
import sys

import cv2
import numpy as np


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_example_photo.py OUT.png")
    h, w = 360, 480
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    img[..., 0] = 150 + 60 * xx / w   # B
    img[..., 1] = 120 + 40 * yy / h   # G
    img[..., 2] = 90 + 30 * (1 - xx / w)  # R
    skin = (120, 160, 215)  # B, G, R
    mask = np.zeros((h, w), np.uint8)
    cx, cy = 250, 215
    cv2.ellipse(mask, (cx, cy), (48, 58), 0, 0, 360, 255, -1)  # palm
    # fingers: (angle from vertical in degrees, length, width), little to index, then thumb
    for ang, length, width in ((-28, 70, 11), (-10, 92, 13), (6, 98, 13), (21, 86, 12)):
        a = np.radians(ang)
        base = (int(cx + 40 * np.sin(a)), int(cy - 45 * np.cos(a)))
        tip = (int(base[0] + length * np.sin(a)), int(base[1] - length * np.cos(a)))
        cv2.line(mask, base, tip, 255, 2 * width)
        cv2.circle(mask, tip, width, 255, -1)
    cv2.line(mask, (cx - 40, cy + 10), (cx - 95, cy - 35), 255, 28)  # thumb
    cv2.circle(mask, (cx - 95, cy - 35), 14, 255, -1)
    cv2.rectangle(mask, (cx - 34, cy + 40), (cx + 34, h), 255, -1)  # wrist and forearm
    soft = cv2.GaussianBlur(mask.astype(np.float64) / 255.0, (0, 0), 1.5)[..., None]
    shade = 0.85 + 0.15 * (1 - yy / h)[..., None]
    img = img * (1 - soft) + np.array(skin, np.float64) * shade * soft
    img += np.random.RandomState(7).normal(0, 3, img.shape)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if not cv2.imwrite(sys.argv[1], out):
        sys.exit("error: cannot write " + sys.argv[1])
    ys, xs = np.nonzero(mask[: cy + 60])
    print("%d,%d,%d,%d" % (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))


if __name__ == "__main__":
    main()
