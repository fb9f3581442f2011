"""OpenCV reference for tests/test_image.cpp: runs the operations listed in a file.

usage: eval_image_ref.py LIST

Each line of LIST is one operation (paths are PNGs unless said otherwise):
  resize IN W H OUT             OUT = cv2.resize(cv2.imread(IN), (W, H))   (INTER_LINEAR)
  crop IN X Y W H OW OH OUT     the release's crop: a zero canvas W x H, the part of the box
                                inside IN copied in, then cv2.resize to (OW, OH)
  imread IN OUT                 OUT = cv2.imread(IN, cv2.IMREAD_COLOR)
  make16 OUT KIND W H SEED      a 16-bit PNG, KIND grey | bgr | bgra, random values
  makejpg OUT W H SEED GREY     a JPEG (quality 90) of a smooth random picture, GREY 0/1
  version OUT                   writes cv2.__version__
"""
import sys

import cv2
import numpy as np


def crop(img, x, y, w, h):
    out = np.zeros((h, w, 3), np.uint8)
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        out[y0 - y:y1 - y, x0 - x:x1 - x] = img[y0:y1, x0:x1]
    return out


def main():
    for line in open(sys.argv[1]):
        a = line.split()
        if not a:
            continue
        op = a[0]
        if op == "resize":
            img = cv2.imread(a[1], cv2.IMREAD_COLOR)
            cv2.imwrite(a[4], cv2.resize(img, (int(a[2]), int(a[3]))))
        elif op == "crop":
            img = cv2.imread(a[1], cv2.IMREAD_COLOR)
            x, y, w, h, ow, oh = map(int, a[2:8])
            cv2.imwrite(a[8], cv2.resize(crop(img, x, y, w, h), (ow, oh)))
        elif op == "imread":
            cv2.imwrite(a[2], cv2.imread(a[1], cv2.IMREAD_COLOR))
        elif op == "make16":
            kind, w, h, seed = a[2], int(a[3]), int(a[4]), int(a[5])
            rng = np.random.default_rng(seed)
            ch = {"grey": 1, "bgr": 3, "bgra": 4}[kind]
            img = rng.integers(0, 65536, (h, w, ch), dtype=np.uint16)
            assert cv2.imwrite(a[1], img[:, :, 0] if ch == 1 else img)
        elif op == "makejpg":
            w, h, seed, grey = int(a[2]), int(a[3]), int(a[4]), int(a[5])
            rng = np.random.default_rng(seed)
            small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
            if grey:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            assert cv2.imwrite(a[1], img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        elif op == "version":
            with open(a[1], "w") as f:
                f.write(cv2.__version__ + "\n")
        else:
            raise SystemExit(f"unknown operation {op}")


if __name__ == "__main__":
    main()
