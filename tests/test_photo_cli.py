"""hand_demo on pictures of any size (issue 11) and thread counts far above the core count
(issue 10), through the real binaries:
  - a crop pasted into a larger canvas with --hand-box and --cam gives the outputs of the
    crop itself with --bbox and the same --cam (JSON equal, value for value);
  - a mirrored image with --hand left gives exactly the mirror of the right-hand result;
  - the JSON contract (schema, image, hands[...]) and the OBJ, PLY and overlay outputs;
  - refusals (one `error:` line naming the flag, exit 1, nothing written): a hand box
    without area or wholly outside the image, --hand middle, a focal length that is not
    positive, --bbox with --hand-box, --bbox without --cam, a big image without a box;
  - hand_demo --threads 64 and 1024, and hand_eval with fewer frames than threads, equal
    one thread; hand_eval --root estimated says so and reports the root error.
Runs on the fixture's random-weight model (tests/reference/make_testdata.py): its joints
say nothing about where a hand is, the geometry around them is what is checked.
Exit 77 (skipped) when the binaries or the fixture are absent.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
BINARY_DIR = os.environ.get("HANDGRAPH_BINARY_DIR") or os.path.join(SOURCE_DIR, "build")
TESTDATA = os.environ.get("HANDGRAPH_TESTDATA") or os.path.join(BINARY_DIR, "tests", "testdata")
SHARED = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
DEMO = os.path.join(BINARY_DIR, "examples", "hand_demo")
EVAL = os.path.join(BINARY_DIR, "examples", "hand_eval")
WEIGHTS = os.path.join(TESTDATA, "seed1", "weights.safetensors")
CROP = os.path.join(TESTDATA, "images", "real_00000.png")
if not os.path.isfile(CROP):
    CROP = os.path.join(TESTDATA, "images", "synthetic_0.png")
TIMEOUT = float(os.environ.get("HANDGRAPH_ROBUSTNESS_TIMEOUT", "300"))

try:
    import numpy as np
    import cv2
except ImportError:  # pragma: no cover
    np = cv2 = None


class Photo(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="handgraph_photo_")
        self.crop = cv2.imread(CROP)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def image(self, name, array):
        p = self.path(name)
        cv2.imwrite(p, array)
        return p

    def run_demo(self, *args):
        return subprocess.run([DEMO, "--weights", WEIGHTS, *args], capture_output=True, text=True, timeout=TIMEOUT)

    def ok(self, *args):
        out = self.path("out_%d.json" % len(os.listdir(self.tmp)))
        p = self.run_demo(*args, "--json", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            return json.load(f)

    def refused(self, *args, names=()):
        out = tempfile.mkdtemp(dir=self.tmp)
        p = self.run_demo(*args, "--json", os.path.join(out, "r.json"), "--obj", os.path.join(out, "r.obj"))
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        for n in names:
            self.assertIn(n, lines[0])
        self.assertEqual(os.listdir(out), [])

    def test_pasted_crop_equals_the_crop(self):
        W, H, X, Y = 640, 480, 331, 97
        canvas = np.full((H, W, 3), 50, np.uint8)
        canvas[Y:Y + 256, X:X + 256] = self.crop
        cam = "612.1,608.3,321.5,238"
        for extra in ((), ("--root", "-1.5,2,45")):
            a = self.ok("--image", self.image("canvas.png", canvas), "--hand-box", "%d,%d,256,256" % (X, Y), "--cam", cam, *extra)
            b = self.ok("--image", CROP, "--bbox", "%d,%d,256,256" % (X, Y), "--cam", cam, *extra)
            ha, hb = a["hands"][0], b["hands"][0]
            self.assertEqual(ha["box_source"], "given")
            self.assertEqual(hb["box_source"], "frame crop")
            self.assertEqual(ha["root"], "given" if extra else "estimated")
            for k in ("uv", "uv_image", "pose_xyz", "mesh_xyz", "box", "camera", "root_xyz"):
                self.assertEqual(ha[k], hb[k], k)
            self.assertEqual(a["pose_xyz"], ha["pose_xyz"])  # the top level is the first hand
            self.assertEqual(ha["units"], "cm")
            self.assertEqual(ha["camera_source"], "given")

    def test_left_hand_is_the_exact_mirror(self):
        right = self.ok("--image", CROP)
        left = self.ok("--image", self.image("mirrored.png", self.crop[:, ::-1].copy()), "--hand", "left")
        r, l = right["hands"][0], left["hands"][0]
        self.assertEqual(l["side"], "left")
        self.assertEqual(r["camera_source"], "assumed")
        self.assertEqual(r["camera"], [256, 256, 127.5, 127.5])
        for (ru, rv), (lu, lv) in zip(r["uv"], l["uv"]):
            self.assertEqual((lu, lv), (255 - ru, rv))
        for a, b in zip(r["uv_image"], l["uv_image"]):
            self.assertEqual(b, [255 - a[0], a[1]])
        for key in ("pose_xyz", "mesh_xyz"):
            for a, b in zip(r[key], l[key]):
                self.assertEqual(b, [-a[0], a[1], a[2]], key)  # -0.0 == 0.0

    def test_outputs_other_tools_read(self):
        obj, ply, png = self.path("m.obj"), self.path("m.ply"), self.path("o.png")
        canvas = np.full((300, 500, 3), 90, np.uint8)
        canvas[20:276, 200:456] = self.crop
        j = self.ok("--image", self.image("c.png", canvas), "--hand-box", "230,40,180,220", "--margin", "1.2",
                    "--obj", obj, "--ply", ply, "--overlay", png)
        self.assertEqual(j["schema"], "handgraph-hands/1")
        self.assertEqual(j["image"]["width"], 500)
        self.assertEqual(j["image"]["height"], 300)
        h = j["hands"][0]
        self.assertEqual(h["box"], [188, 18, 264, 264])  # centre (320, 150), side round(220 x 1.2) = 264
        self.assertEqual(len(h["uv_image"]), 21)
        self.assertEqual(len(h["mesh_xyz"]), 954)
        self.assertEqual(h["scale_cm"], 5)
        with open(obj) as f:
            lines = f.read().splitlines()
        self.assertEqual(sum(l.startswith("v ") for l in lines), 954)
        faces = sum(l.startswith("f ") for l in lines)
        with open(ply) as f:
            text = f.read()
        self.assertIn("element vertex 954", text)
        self.assertIn("element face %d" % faces, text)
        o = cv2.imread(png)
        self.assertEqual(o.shape, canvas.shape)
        self.assertGreater(int(np.abs(o.astype(int) - canvas).sum()), 0)  # something was drawn

    def test_refusals(self):
        canvas = self.image("big.png", np.full((480, 640, 3), 10, np.uint8))
        self.refused("--image", canvas, names=("640x480", "--hand-box"))
        self.refused("--image", canvas, "--hand-box", "10,10,0,40", names=("--hand-box", "positive"))
        self.refused("--image", canvas, "--hand-box", "700,10,40,40", names=("wholly outside", "640x480"))
        self.refused("--image", canvas, "--hand-box", "10,-90,40,40", names=("wholly outside",))
        self.refused("--image", canvas, "--hand-box", "10,10,40,40", "--hand", "middle", names=("--hand", "middle"))
        self.refused("--image", canvas, "--hand-box", "10,10,40,40", "--cam", "0,500,320,240", names=("--cam", "positive"))
        self.refused("--image", canvas, "--hand-box", "10,10,40,40", "--cam", "-600,500,320,240", names=("--cam",))
        self.refused("--image", CROP, "--bbox", "0,0,256,256", "--hand-box", "1,1,9,9", names=("--bbox", "--hand-box"))
        self.refused("--image", CROP, "--bbox", "0,0,256,256", names=("--bbox", "--cam"))
        self.refused("--image", canvas, "--hand-box", "10,10,40,40", "--margin", "0", names=("--margin",))
        self.refused("--image", canvas, "--hand-box", "10,10,40,40", "--scale", "-5", names=("--scale",))
        self.refused("--image", canvas, "--hand-box", "10,10,40,40", "--units", "inches", names=("--units",))
        self.refused("--image", CROP, "--margin", "1.5", names=("--margin", "--hand-box"))


class Threads(unittest.TestCase):
    """Thread counts far above this machine's cores work and change nothing (the pool once
    kept its thread count in 8 bits: 256 hung), or are refused."""

    def test_hand_demo_threads(self):
        tmp = tempfile.mkdtemp(prefix="handgraph_threads_")
        try:
            outs = {}
            for t in ("1", "64", "1024"):
                out = os.path.join(tmp, "t%s.json" % t)
                p = subprocess.run([DEMO, "--weights", WEIGHTS, "--image", CROP, "--threads", t, "--json", out],
                                   capture_output=True, text=True, timeout=TIMEOUT)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(out) as f:
                    outs[t] = json.load(f)
            for t in ("64", "1024"):
                for k in ("uv", "pose_xyz", "mesh_xyz"):
                    self.assertEqual(outs[t][k], outs["1"][k], "--threads %s: %s" % (t, k))
            for bad in ("0", "1025", "100000"):
                p = subprocess.run([DEMO, "--weights", WEIGHTS, "--image", CROP, "--threads", bad], capture_output=True, text=True,
                                   timeout=TIMEOUT)
                self.assertEqual(p.returncode, 1)
                self.assertIn("--threads", p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_hand_eval_fewer_frames_than_threads(self):
        data = os.path.join(SHARED, "real_world_testset")
        if not os.path.isfile(os.path.join(data, "params.mat")):
            self.skipTest("the release's real-world test set is absent (%s)" % data)
        tmp = tempfile.mkdtemp(prefix="handgraph_eval_threads_")
        try:
            summaries = {}
            for t, extra in (("1", ()), ("8", ()), ("300", ()), ("1", ("--root", "estimated"))):
                out = os.path.join(tmp, "t%s%s" % (t, "_est" if extra else ""))
                p = subprocess.run([EVAL, "--dataset", "realworld", "--data", data, "--weights", WEIGHTS, "--out", out,
                                    "--limit", "3", "--threads", t, *extra], capture_output=True, text=True, timeout=TIMEOUT)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(os.path.join(out, "summary.json")) as f:
                    summaries[out] = json.load(f)
                with open(os.path.join(out, "per_frame.csv")) as f:
                    summaries[out]["csv"] = f.read()
            base = summaries[os.path.join(tmp, "t1")]
            self.assertEqual(base["root"], "given")
            for t in ("8", "300"):
                s = summaries[os.path.join(tmp, "t" + t)]
                self.assertEqual(s["threads"], int(t))
                for k in ("mean_error_mm", "root_relative_error_mm", "csv"):
                    self.assertEqual(s[k], base[k], "--threads %s: %s" % (t, k))
            est = summaries[os.path.join(tmp, "t1_est")]
            self.assertEqual(est["root"], "estimated")
            self.assertGreaterEqual(est["root_error_mm"], 0)
            self.assertNotIn("root_error_mm", base)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if np is None:
        print("SKIPPED: numpy/cv2 missing")
        sys.exit(77)
    for b in (DEMO, EVAL):
        if not os.path.isfile(b):
            print("SKIPPED: %s not built" % b)
            sys.exit(77)
    if not os.path.isfile(WEIGHTS):
        print("SKIPPED: no fixture weights in %s (tests/reference/make_testdata.py)" % TESTDATA)
        sys.exit(77)
    sys.path.insert(0, HERE)
    import unittest_support
    unittest_support.main()
