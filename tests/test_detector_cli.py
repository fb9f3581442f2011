"""hand_demo finding the hands itself (issue 12), through the real binary:
  - a photo that is not 256x256, without --hand-box: the hands are found by the palm
    detector (--detector, a file converted here from ../shared/data/mediapipe by
    tools/convert_palm.py) and each is estimated: hands[] entries with box_source
    "detected", detection_score and palm_keypoints (7 x 2, image pixels) equal to what
    tests/reference/palm_reference.py finds on the same PNG (run on the .tflite itself), the
    box the one estimate_hand crops from the reference's hand region; the top level is the
    first hand; --max-hands; --hand left for every hand; --overlay draws the boxes;
  - no hand: exit 0, "hands": [], null top-level arrays, stderr says so, no mesh written;
  - refusals (one `error:` line, exit 1, nothing written): the default detector missing
    (naming tools/get_palm_detector.sh), a hand-network weight file, a .tflite, a truncated
    file and a graph with an op the detector does not run given as --detector, the palm
    detector given as --weights, --max-hands 0, --detector without detection, --root with
    two hands.
Runs the random-weight hand network (no --weights): its joints mean nothing, the boxes do.
Exit 77 (skipped) when hand_demo, numpy/cv2, the MediaPipe models or the real-world test
set are absent.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import palm_support  # tests/palm_support.py

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
BINARY_DIR = os.environ.get("HANDGRAPH_BINARY_DIR") or os.path.join(SOURCE_DIR, "build")
SHARED = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
MEDIAPIPE = os.path.join(os.path.dirname(os.path.abspath(SHARED)), "mediapipe")
FULL = os.path.join(MEDIAPIPE, "palm_detection_full.tflite")
REALWORLD = os.path.join(SHARED, "real_world_testset", "images")
DEMO = os.path.join(BINARY_DIR, "examples", "hand_demo")
PYTHON = os.environ.get("HANDGRAPH_PYTHON") or sys.executable
TIMEOUT = float(os.environ.get("HANDGRAPH_ROBUSTNESS_TIMEOUT", "300"))

try:
    import numpy as np
    import cv2
except ImportError:  # pragma: no cover
    np = cv2 = None


def crop_square(box):
    """model::estimate_hand's crop of a hand box (margin 1): side max(w, h) rounded, the
    corner of the square centred on the box rounded (pipeline.hpp)."""
    side = max(1.0, np.floor(max(box[2], box[3]) + 0.5))
    cx, cy = box[0] + box[2] / 2.0, box[1] + box[3] / 2.0
    return [np.floor(cx - side / 2 + 0.5), np.floor(cy - side / 2 + 0.5), side, side]


class Detected(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="handgraph_detector_cli_")
        cls.detector = os.path.join(cls.tmp, "palm_detection_full.safetensors")
        palm_support.convert(FULL, cls.detector, python=PYTHON, timeout=TIMEOUT)
        rng = np.random.RandomState(5)

        def background(h, w):
            y, x = np.mgrid[0:h, 0:w]
            t = ((x / w + y / h) / 2)[..., None]
            a, b = rng.randint(60, 190, 3), rng.randint(60, 190, 3)
            img = a * (1 - t) + b * t + rng.randint(-10, 11, (h, w, 3))
            return np.clip(img, 0, 255).astype(np.uint8)

        def crop(name):
            return cv2.imread(os.path.join(REALWORLD, name))

        two = background(480, 640)
        two[100:330, 20:250] = cv2.resize(crop("00200.jpg"), (230, 230))
        two[150:420, 350:620] = cv2.resize(crop("00333.jpg"), (270, 270))
        cls.two_hands = cls.image("two_hands.png", two)
        one = background(480, 640)
        one[40:251, 400:611] = cv2.resize(crop("00150.jpg"), (211, 211))
        cls.one_hand = cls.image("one_hand.png", one)
        cls.no_hand = cls.image("no_hand.png", background(300, 400))
        cls.crop256 = cls.image("crop.png", crop("00007.jpg"))
        # The reference on the same PNGs (float64 numpy run of the .tflite).
        ref = os.path.join(cls.tmp, "reference.json")
        p = subprocess.run([PYTHON, os.path.join(SOURCE_DIR, "tests", "reference", "palm_reference.py"), FULL, cls.two_hands, cls.one_hand,
                            cls.no_hand, "--json", ref], capture_output=True, text=True, timeout=TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError("palm_reference.py failed: " + p.stderr)
        with open(ref) as f:
            cls.reference = {os.path.basename(im["image"]): im for im in json.load(f)["images"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def image(cls, name, array):
        p = os.path.join(cls.tmp, name)
        cv2.imwrite(p, array)
        return p

    def run_demo(self, *args, cwd=None):
        return subprocess.run([DEMO, *args], capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)

    def ok(self, *args):
        out = tempfile.mkdtemp(dir=self.tmp)
        js = os.path.join(out, "r.json")
        p = self.run_demo(*args, "--json", js)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(js) as f:
            return json.load(f), p.stderr, out

    def refused(self, *args, names=(), cwd=None):
        out = tempfile.mkdtemp(dir=self.tmp)
        p = self.run_demo(*args, "--json", os.path.join(out, "r.json"), "--obj", os.path.join(out, "r.obj"), cwd=cwd)
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        for n in names:
            self.assertIn(n, lines[0])
        self.assertEqual(os.listdir(out), [])

    def check_against_reference(self, hands, name):
        ref = self.reference[name]["hands"]
        self.assertGreaterEqual(len(ref), len(hands))
        for h, r in zip(hands, ref):
            self.assertEqual(h["box_source"], "detected")
            self.assertAlmostEqual(h["detection_score"], r["score"], delta=1e-4 * r["score"])
            kp = np.array(h["palm_keypoints"])
            self.assertEqual(kp.shape, (7, 2))
            self.assertLess(np.abs(kp - np.array(r["keypoints_px"])).max(), 0.05)
            # The crop box: estimate_hand's square of the reference's axis-aligned hand box.
            want = crop_square(r["region"]["box"] + [r["region"]["box"][2]])
            self.assertLessEqual(np.abs(np.array(h["box"]) - np.array(want)).max(), 1.0, (h["box"], want))

    def test_two_hands_found_and_estimated(self):
        j, err, out = self.ok("--image", self.two_hands, "--detector", self.detector, "--obj", "{}/m.obj".format(self.tmp))
        self.assertEqual(len(j["hands"]), 2, err)
        self.check_against_reference(j["hands"], "two_hands.png")
        self.assertGreater(j["hands"][0]["detection_score"], j["hands"][1]["detection_score"])
        for k in ("uv", "pose_xyz", "mesh_xyz"):
            self.assertEqual(j[k], j["hands"][0][k], k)  # the top level is the first hand
        for h in j["hands"]:
            self.assertEqual(h["side"], "right")
            self.assertEqual(len(h["uv_image"]), 21)
            self.assertEqual(len(h["mesh_xyz"]), 954)
        self.assertEqual(j["detector"]["found"], 2)
        self.assertEqual(j["detector"]["model"], "palm_detection_full")
        self.assertIn("2 found", err)
        self.assertIn("does not tell left from right", err)

    def test_max_hands_and_side(self):
        j, err, out = self.ok("--image", self.two_hands, "--detector", self.detector, "--max-hands", "1", "--hand", "left")
        self.assertEqual(len(j["hands"]), 1)
        self.check_against_reference(j["hands"], "two_hands.png")  # the best one
        self.assertEqual(j["hands"][0]["side"], "left")
        j2, _, _ = self.ok("--image", self.two_hands, "--detector", self.detector, "--hand", "left")
        self.assertEqual([h["side"] for h in j2["hands"]], ["left", "left"])
        j3, _, _ = self.ok("--image", self.one_hand, "--detector", self.detector)
        self.assertEqual(len(j3["hands"]), 1)
        self.check_against_reference(j3["hands"], "one_hand.png")

    def test_overlay_draws_the_boxes(self):
        j, err, out = self.ok("--image", self.one_hand, "--detector", self.detector, "--overlay", os.path.join(self.tmp, "overlay.png"))
        pic = cv2.imread(os.path.join(self.tmp, "overlay.png"))
        src = cv2.imread(self.one_hand)
        self.assertEqual(pic.shape, src.shape)
        x, y, side, _ = [int(v) for v in j["hands"][0]["box"]]
        # The box's left and bottom edges are drawn white (the detection is drawn last).
        self.assertTrue((pic[y + side // 2, x] == 255).all(), pic[y + side // 2, x])
        self.assertTrue((pic[y + side - 1, x + side // 2] == 255).all())
        self.assertGreater(np.abs(pic.astype(int) - src).sum(), 0)

    def test_no_hand(self):
        out = tempfile.mkdtemp(dir=self.tmp)
        js, obj, png = os.path.join(out, "r.json"), os.path.join(out, "r.obj"), os.path.join(out, "r.png")
        self.assertEqual(self.reference["no_hand.png"]["hands"], [])
        p = self.run_demo("--image", self.no_hand, "--detector", self.detector, "--json", js, "--obj", obj, "--overlay", png)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("no hand found", p.stderr)
        with open(js) as f:
            j = json.load(f)
        self.assertEqual(j["hands"], [])
        self.assertIsNone(j["uv"])
        self.assertIsNone(j["pose_xyz"])
        self.assertIsNone(j["mesh_xyz"])
        self.assertEqual(j["detector"]["found"], 0)
        self.assertFalse(os.path.exists(obj))  # no mesh to write
        self.assertTrue(os.path.exists(png))   # the picture, nothing drawn on it
        self.assertTrue((cv2.imread(png) == cv2.imread(self.no_hand)).all())

    def test_refusals(self):
        # The default detector (weights/palm_detection_full.safetensors, relative to the
        # working folder) missing.
        empty = tempfile.mkdtemp(dir=self.tmp)
        self.refused("--image", self.one_hand, cwd=empty,
                     names=("640x480", "weights/palm_detection_full.safetensors", "tools/get_palm_detector.sh", "--hand-box"))
        # Other files given as the detector.
        hand = os.path.join(self.tmp, "hand_weights.safetensors")
        header = json.dumps({"__metadata__": {"format": "handgraph-weights", "format_version": "1"},
                             "net_hm.conv1_.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
        with open(hand, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header + bytes(4))
        self.refused("--image", self.one_hand, "--detector", hand, names=(hand, "hand network's weight file", "tools/convert_palm.py"))
        self.refused("--image", self.one_hand, "--detector", FULL, names=("TFLite model", "tools/convert_palm.py"))
        with open(self.detector, "rb") as f:
            data = f.read()
        cut = os.path.join(self.tmp, "cut.safetensors")
        with open(cut, "wb") as f:
            f.write(data[:len(data) // 2])
        self.refused("--image", self.one_hand, "--detector", cut, names=(cut, "truncated"))
        renamed = os.path.join(self.tmp, "op.safetensors")
        with open(renamed, "wb") as f:
            f.write(data.replace(b'\\"PRELU\\"', b'\\"TANH\\" ', 1))
        self.refused("--image", self.one_hand, "--detector", renamed, names=("graph op 1 is TANH", "does not run"))
        # The palm detector given as the hand network's weights.
        self.refused("--weights", self.detector, "--image", self.one_hand, "--detector", self.detector, names=("this is a palm detector",))
        # Flags that do not fit.
        self.refused("--image", self.one_hand, "--detector", self.detector, "--max-hands", "0", names=("--max-hands",))
        self.refused("--image", self.crop256, "--detector", self.detector, names=("--detector",))
        self.refused("--image", self.one_hand, "--hand-box", "400,40,211,211", "--max-hands", "3", names=("--max-hands",))
        self.refused("--image", self.one_hand, "--detector", self.detector, "--root", "1,2,40", names=("--root", "--max-hands 1"))
        j, _, _ = self.ok("--image", self.one_hand, "--detector", self.detector, "--root", "1,2,40", "--max-hands", "1")
        self.assertEqual(j["hands"][0]["root"], "given")


if __name__ == "__main__":
    missing = [what for what, ok in (("numpy/cv2", np is not None), ("hand_demo (%s)" % DEMO, os.path.isfile(DEMO)),
                                      ("the MediaPipe palm detectors (%s)" % MEDIAPIPE, os.path.isfile(FULL)),
                                      ("the real-world test set (%s)" % REALWORLD, os.path.isdir(REALWORLD))) if not ok]
    if missing:
        print("SKIPPED: missing " + "; ".join(missing))
        sys.exit(77)
    sys.path.insert(0, HERE)
    import unittest_support
    unittest_support.main()
