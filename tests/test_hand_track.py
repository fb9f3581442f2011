"""hand_track (issue 13), through the real binary, on short lossless videos made here with
ffmpeg from the release's real-world crops pasted into 640x480 frames (positions known):
  - Tracking: with the palm detector (converted here from ../shared/data/mediapipe by
    tools/convert_palm.py) on every frame, the box used overlaps the pasted hand (IoU >= 0.5)
    on every frame with a hand, one id while it moves, no hand while it is gone, found
    again when it comes back; with smoothing off each frame's result equals a single-image
    hand_demo run on the same PNG with the same box, number for number; smoothing on equals
    the One Euro filter computed here from the raw results; --video (ffv1), --frames (PNGs)
    and --raw (bgr24 on stdin) give the same frames.jsonl, byte for byte; --obj,
    --overlay-dir, --overlay-video write what they say; summary.json.
  - BoxFromJoints: the joint-based box update alone, driven by the ground-truth joints
    (--box-joints, --detect-every 0, no detector): it follows a hand moving and growing
    across the frame (IoU >= 0.5 with the pasted crop on every frame).
  - BadInput: a video ffmpeg cannot read, a video cut midway (the frames before kept and
    complete), --raw with a short last frame, ffmpeg missing (PATH on an empty folder),
    SIGINT midway (exit non-zero, frames.jsonl and summary.json complete), bad flags: one
    `error:` line, exit 1.
The hand network runs on its embedded random weights: its joints say nothing about where
the hand is, so the boxes are checked through the detector, and the joint-based update with
ground-truth joints. The C++ side of the tracking (the One Euro filter against its formula,
the tracker's schedule and ids) is tests/test_hand_track.cpp.
Exit 77 (skipped) when hand_track, hand_demo, numpy/cv2/scipy, ffmpeg or the real-world test
set are absent; Tracking skips without the MediaPipe palm detector.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import palm_support  # tests/palm_support.py

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
BINARY_DIR = os.environ.get("HANDGRAPH_BINARY_DIR") or os.path.join(SOURCE_DIR, "build")
SHARED = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
MEDIAPIPE = os.path.join(os.path.dirname(os.path.abspath(SHARED)), "mediapipe")
FULL = os.path.join(MEDIAPIPE, "palm_detection_full.tflite")
REALWORLD = os.path.join(SHARED, "real_world_testset")
TRACK = os.path.join(BINARY_DIR, "examples", "hand_track")
DEMO = os.path.join(BINARY_DIR, "examples", "hand_demo")
PYTHON = os.environ.get("HANDGRAPH_PYTHON") or sys.executable
TIMEOUT = float(os.environ.get("HANDGRAPH_ROBUSTNESS_TIMEOUT", "300"))
FPS = 25
W, H = 640, 480

try:
    import numpy as np
    import cv2
    import scipy.io
except ImportError:  # pragma: no cover
    np = cv2 = scipy = None


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def background(rng):
    y, x = np.mgrid[0:H, 0:W]
    t = ((x / W + y / H) / 2)[..., None]
    a, b = rng.randint(60, 190, 3), rng.randint(60, 190, 3)
    return np.clip(a * (1 - t) + b * t + rng.randint(-10, 11, (H, W, 3)), 0, 255).astype(np.uint8)


def crop(name):
    return cv2.imread(os.path.join(REALWORLD, "images", name))


def write_frames(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(os.path.join(folder, "frame_%03d.png" % i), f)


def make_video(png_folder, path):
    """A lossless video of the PNGs (ffv1, bgr0: decoded back to the same bgr24 bytes)."""
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-framerate", str(FPS), "-i", os.path.join(png_folder, "frame_%03d.png"),
                        "-c:v", "ffv1", "-pix_fmt", "bgr0", path], capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError("ffmpeg failed: " + p.stderr)


def run_track(*args, stdin=None, env=None, cwd=SOURCE_DIR, quiet=True):
    return subprocess.run([TRACK, *(["--quiet"] if quiet else []), *args], capture_output=True, timeout=TIMEOUT, input=stdin, env=env, cwd=cwd)


def read_jsonl(out):
    with open(os.path.join(out, "frames.jsonl")) as f:
        text = f.read()
    if text:
        assert text.endswith("\n"), "frames.jsonl ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


def read_summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


class Helpers:
    def ok(self, p):
        self.assertEqual(p.returncode, 0, p.stderr.decode())

    def one_error(self, p, names=(), status=1):
        err = p.stderr.decode()
        self.assertEqual(p.returncode, status, err)
        lines = [l for l in err.splitlines() if l.startswith("error:")]
        self.assertEqual(len(lines), 1, err)
        for n in names:
            self.assertIn(n, lines[0])
        return lines[0]


class Tracking(unittest.TestCase, Helpers):
    """10 frames: a real-world hand (crop 00150) moving right and down over frames 0-5, gone
    on 6-7, back elsewhere (crop 00333) on 8-9."""

    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(FULL):
            raise unittest.SkipTest("no MediaPipe palm detector in " + MEDIAPIPE)
        cls.tmp = tempfile.mkdtemp(prefix="handgraph_track_")
        cls.detector = os.path.join(cls.tmp, "palm.safetensors")
        palm_support.convert(FULL, cls.detector, python=PYTHON, timeout=TIMEOUT)
        rng = np.random.RandomState(7)
        frames, cls.truth = [], []
        a, b = cv2.resize(crop("00150.jpg"), (220, 220)), cv2.resize(crop("00333.jpg"), (240, 240))
        for i in range(10):
            img = background(rng)
            if i <= 5:
                x, y, s, c = 30 + 40 * i, 40 + 20 * i, 220, a
            elif i >= 8:
                x, y, s, c = 360, 200, 240, b
            else:
                x = None
            if x is None:
                cls.truth.append(None)
            else:
                img[y:y + s, x:x + s] = c
                cls.truth.append([x, y, s, s])
            frames.append(img)
        cls.frames = frames
        cls.pngs = os.path.join(cls.tmp, "png")
        write_frames(cls.pngs, frames)
        cls.video = os.path.join(cls.tmp, "hands.mkv")
        make_video(cls.pngs, cls.video)
        common = ["--detector", cls.detector, "--detect-every", "1", "--threads", "2"]
        # Smoothing off, with every output.
        cls.raw_out = os.path.join(cls.tmp, "raw")
        cls.overlay_dir = os.path.join(cls.tmp, "overlay")
        cls.p_raw = run_track("--video", cls.video, "--out", cls.raw_out, "--no-smooth", "--obj", "--overlay-dir", cls.overlay_dir, *common)
        # Smoothing on, from the three inputs.
        cls.outs = {k: os.path.join(cls.tmp, k) for k in ("video", "frames", "raw_stdin")}
        cls.overlay_video = os.path.join(cls.tmp, "overlay.mp4")
        cls.p_video = run_track("--video", cls.video, "--out", cls.outs["video"], "--overlay-video", cls.overlay_video, *common)
        cls.p_frames = run_track("--frames", cls.pngs, "--fps", str(FPS), "--out", cls.outs["frames"], *common)
        cls.p_stdin = run_track("--raw", "%dx%d" % (W, H), "--fps", str(FPS), "--out", cls.outs["raw_stdin"], *common,
                                stdin=b"".join(f.tobytes() for f in frames))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_box_stays_on_the_hand(self):
        self.ok(self.p_raw)
        lines = read_jsonl(self.raw_out)
        self.assertEqual([l["frame"] for l in lines], list(range(10)))
        self.assertEqual([l["time_s"] for l in lines], [i / FPS for i in range(10)])
        ids = []
        for l, truth in zip(lines, self.truth):
            self.assertEqual((l["width"], l["height"]), (W, H))
            if truth is None:
                self.assertEqual(l["hands"], [], l["frame"])
                continue
            self.assertEqual(len(l["hands"]), 1, l["frame"])
            h = l["hands"][0]
            self.assertGreaterEqual(iou(h["hand_box"], truth), 0.5, (l["frame"], h["hand_box"], truth))
            self.assertGreaterEqual(iou(h["box"], truth), 0.5, (l["frame"], h["box"], truth))
            self.assertEqual(h["box_source"], "detected")
            self.assertEqual(len(h["palm_keypoints"]), 7)
            self.assertEqual(len(h["uv_image"]), 21)
            self.assertEqual(len(h["mesh_xyz"]), 954)
            ids.append((l["frame"], h["id"]))
        # One id while it moves; the hand back elsewhere is a new one.
        self.assertEqual({i for f, i in ids if f <= 5}, {0})
        self.assertEqual({i for f, i in ids if f >= 8}, {1})
        s = read_summary(self.raw_out)
        self.assertEqual((s["frames"], s["frames_with_hand"], s["hands_found"], s["detector_runs"], s["threads"]), (10, 8, 2, 10, 2))
        self.assertTrue(s["complete"])
        self.assertEqual(s["stopped"], "end of input")
        self.assertTrue(s["random_weights"])
        self.assertFalse(s["meaningful"]["joints"])
        self.assertTrue(s["meaningful"]["boxes"])
        self.assertGreater(s["fps"], 0)
        self.assertIsNone(s["smoothing"])
        # --obj and --overlay-dir.
        objs = sorted(os.listdir(os.path.join(self.raw_out, "obj")))
        self.assertEqual(objs, ["frame_%06d_hand_%d.obj" % (f, i) for f, i in ids])
        with open(os.path.join(self.raw_out, "obj", objs[0])) as f:
            text = f.read()
        self.assertEqual(text.count("\nv "), 954)
        self.assertEqual(sorted(os.listdir(self.overlay_dir)), ["frame_%06d.png" % i for i in range(10)])
        pic = cv2.imread(os.path.join(self.overlay_dir, "frame_000000.png"))
        self.assertEqual(pic.shape, (H, W, 3))
        self.assertGreater(np.abs(pic.astype(int) - self.frames[0]).sum(), 0)
        self.assertTrue((cv2.imread(os.path.join(self.overlay_dir, "frame_000006.png")) == self.frames[6]).all())  # nothing drawn

    def test_equals_single_image_runs(self):
        self.ok(self.p_raw)
        lines = read_jsonl(self.raw_out)
        for k in (0, 3, 9):
            h = lines[k]["hands"][0]
            js = os.path.join(self.tmp, "single_%d.json" % k)
            box = ",".join(repr(v) for v in h["hand_box"])
            p = subprocess.run([DEMO, "--image", os.path.join(self.pngs, "frame_%03d.png" % k), "--hand-box", box, "--json", js, "--threads", "1"],
                               capture_output=True, text=True, timeout=TIMEOUT, cwd=SOURCE_DIR)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(js) as f:
                single = json.load(f)["hands"][0]
            for key in ("side", "box", "uv", "uv_image", "pose_xyz", "mesh_xyz", "units", "root", "root_method", "root_xyz", "camera",
                        "camera_source", "scale_cm"):
                self.assertEqual(h[key], single[key], (k, key))

    def test_smoothing_is_the_one_euro_filter(self):
        self.ok(self.p_raw)
        self.ok(self.p_video)
        raw, smooth = read_jsonl(self.raw_out), read_jsonl(self.outs["video"])
        s = read_summary(self.outs["video"])["smoothing"]
        mc, beta, dc = s["min_cutoff_hz"], s["beta"], s["d_cutoff_hz"]

        def alpha(fc, te):
            return 1.0 / (1.0 + (1.0 / (2 * math.pi * fc)) / te)

        for key in ("uv_image", "pose_xyz", "mesh_xyz"):
            state = {}  # id -> (xhat, dxhat, t)
            for r, sm in zip(raw, smooth):
                self.assertEqual([h["id"] for h in r["hands"]], [h["id"] for h in sm["hands"]])
                self.assertEqual([h["hand_box"] for h in r["hands"]], [h["hand_box"] for h in sm["hands"]])
                t = r["time_s"]
                for hr, hs in zip(r["hands"], sm["hands"]):
                    x = np.array(hr[key], dtype=np.float64)
                    if hr["id"] not in state:
                        want, dxh = x, np.zeros_like(x)
                    else:
                        xh, dxh, t0 = state[hr["id"]]
                        te = t - t0
                        dxh = alpha(dc, te) * (x - xh) / te + (1 - alpha(dc, te)) * dxh
                        a = alpha(mc + beta * np.abs(dxh), te)
                        want = a * x + (1 - a) * xh
                    state[hr["id"]] = (want, dxh, t)
                    got = np.array(hs[key])
                    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-5 * max(1.0, np.abs(want).max()), err_msg="%s frame %d" % (key, r["frame"]))
                    if r["frame"] in (1, 2) and key == "uv_image":
                        self.assertGreater(np.abs(got - x).max(), 1e-3)  # it did smooth
                live = {h["id"] for h in r["hands"]}
                for i in list(state):
                    if i not in live:
                        del state[i]  # a hand lost starts afresh

    def test_max_hands(self):
        # Two hands (crops 00200 and 00333, as test_detector_cli pastes them) on 3 frames.
        rng = np.random.RandomState(9)
        two = []
        for i in range(3):
            img = background(rng)
            img[100:330, 20 + 10 * i:250 + 10 * i] = cv2.resize(crop("00200.jpg"), (230, 230))
            img[150:420, 350:620] = cv2.resize(crop("00333.jpg"), (270, 270))
            two.append(img)
        folder = os.path.join(self.tmp, "two")
        write_frames(folder, two)
        for n, want in (("2", 2), ("1", 1)):
            out = os.path.join(self.tmp, "two_out_" + n)
            self.ok(run_track("--frames", folder, "--out", out, "--max-hands", n, "--detector", self.detector, "--detect-every", "1", "--threads", "2"))
            lines = read_jsonl(out)
            self.assertEqual([len(l["hands"]) for l in lines], [want] * 3)
            self.assertEqual([[h["id"] for h in l["hands"]] for l in lines], [list(range(want))] * 3)  # ids kept
            self.assertEqual(read_summary(out)["hands_found"], want)

    def test_video_frames_and_raw_agree(self):
        for p in (self.p_video, self.p_frames, self.p_stdin):
            self.ok(p)
        texts = {}
        for k, out in self.outs.items():
            with open(os.path.join(out, "frames.jsonl"), "rb") as f:
                texts[k] = f.read()
        self.assertEqual(texts["video"].count(b"\n"), 10)
        self.assertEqual(texts["frames"], texts["video"])
        self.assertEqual(texts["raw_stdin"], texts["video"])
        self.assertEqual(read_summary(self.outs["frames"])["frames"], 10)
        # The overlay video: 10 frames of 640x480.
        cap = cv2.VideoCapture(self.overlay_video)
        n = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            self.assertEqual(img.shape, (H, W, 3))
            n += 1
        self.assertEqual(n, 10)


class BoxFromJoints(unittest.TestCase, Helpers):
    """The box update on its own: real-world frame 00150 moving 24 px right, 12 px down and
    growing 3% a frame; its ground-truth joints (pose_gt.mat projected with params.mat's
    camera into the crop, then into the frame) replace the network's for the box update."""

    def test_box_follows_the_ground_truth_joints(self):
        tmp = tempfile.mkdtemp(prefix="handgraph_track_joints_")
        self.addCleanup(shutil.rmtree, tmp, True)
        params = scipy.io.loadmat(os.path.join(REALWORLD, "params.mat"))
        pose = scipy.io.loadmat(os.path.join(REALWORLD, "pose_gt.mat"))["pose_gt"]
        i = 150
        cam, bbox, q = params["cam_param"][i], params["bbox"][i], pose[i]
        u = (cam[0] * q[:, 0] / q[:, 2] + cam[2] - bbox[0]) * 256.0 / bbox[2]
        v = (cam[1] * q[:, 1] / q[:, 2] + cam[3] - bbox[1]) * 256.0 / bbox[3]
        rng = np.random.RandomState(3)
        img = crop("%05d.jpg" % i)
        frames, truth, joints = [], [], []
        for k in range(12):
            s = int(round(180 * 1.03 ** k))
            x, y = 20 + 24 * k, 30 + 12 * k
            f = background(rng)
            f[y:y + s, x:x + s] = cv2.resize(img, (s, s))
            frames.append(f)
            truth.append([x, y, s, s])
            joints.append([[x + (uu + 0.5) * s / 256.0 - 0.5, y + (vv + 0.5) * s / 256.0 - 0.5] for uu, vv in zip(u, v)])
        pngs = os.path.join(tmp, "png")
        write_frames(pngs, frames)
        jfile = os.path.join(tmp, "joints.json")
        with open(jfile, "w") as f:
            json.dump(joints, f)
        out = os.path.join(tmp, "out")
        p = run_track("--frames", pngs, "--out", out, "--detect-every", "0", "--hand-box", ",".join(str(t) for t in truth[0]),
                      "--box-joints", jfile, "--no-smooth")
        self.ok(p)
        lines = read_jsonl(out)
        self.assertEqual(len(lines), 12)
        for l, t in zip(lines, truth):
            self.assertEqual(len(l["hands"]), 1)
            h = l["hands"][0]
            self.assertEqual(h["id"], 0)
            self.assertEqual(h["box_source"], "given" if l["frame"] == 0 else "tracked")
            self.assertFalse(l["detector_ran"])
            self.assertGreaterEqual(iou(h["hand_box"], t), 0.5, (l["frame"], h["hand_box"], t))
        # The last box is where the hand went, not where it started.
        self.assertGreater(lines[-1]["hands"][0]["hand_box"][0], truth[0][0] + 200)
        self.assertIsNone(read_summary(out)["detector"])


class BadInput(unittest.TestCase, Helpers):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="handgraph_track_bad_")
        rng = np.random.RandomState(11)
        c = cv2.resize(crop("00150.jpg"), (200, 200))
        cls.frames = []
        for i in range(10):
            f = background(rng)
            f[100:300, 50 + 20 * i:250 + 20 * i] = c
            cls.frames.append(f)
        cls.pngs = os.path.join(cls.tmp, "png")
        write_frames(cls.pngs, cls.frames)
        cls.video = os.path.join(cls.tmp, "v.mkv")
        make_video(cls.pngs, cls.video)
        # Without the detector: the first frame's box, then the joints' boxes.
        cls.fast = ["--detect-every", "0", "--hand-box", "50,100,200,200"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def out(self):
        return tempfile.mkdtemp(dir=self.tmp)

    def test_unreadable_video(self):
        bad = os.path.join(self.tmp, "garbage.mp4")
        with open(bad, "wb") as f:
            f.write(b"this is not a video\n" * 100)
        self.one_error(run_track("--video", bad, "--out", self.out(), *self.fast), names=(bad, "ffmpeg cannot read it"))
        missing = os.path.join(self.tmp, "missing.mkv")
        self.one_error(run_track("--video", missing, "--out", self.out(), *self.fast), names=(missing, "does not exist"))

    def test_video_cut_midway(self):
        cut = os.path.join(self.tmp, "cut.mkv")
        with open(self.video, "rb") as f:
            data = f.read()
        with open(cut, "wb") as f:
            f.write(data[:len(data) * 6 // 10])
        out = self.out()
        self.one_error(run_track("--video", cut, "--out", out, *self.fast), names=(cut, "breaks off"))
        lines = read_jsonl(out)
        s = read_summary(out)
        self.assertGreater(len(lines), 0)
        self.assertLess(len(lines), 10)
        self.assertEqual(s["frames"], len(lines))
        self.assertEqual([l["frame"] for l in lines], list(range(len(lines))))
        self.assertFalse(s["complete"])
        self.assertEqual(s["stopped"], "error")
        self.assertIn(cut, s["error"])

    def test_raw_short_last_frame(self):
        out = self.out()
        data = self.frames[0].tobytes() + self.frames[1].tobytes() + self.frames[2].tobytes()[:1000]
        self.one_error(run_track("--raw", "640x480", "--out", out, *self.fast, stdin=data), names=("standard input", "short", "1000 of 921600"))
        self.assertEqual(len(read_jsonl(out)), 2)
        s = read_summary(out)
        self.assertEqual((s["frames"], s["complete"]), (2, False))

    def test_missing_ffmpeg(self):
        empty = tempfile.mkdtemp(dir=self.tmp)
        env = dict(os.environ, PATH=empty)
        self.one_error(run_track("--video", self.video, "--out", self.out(), *self.fast, env=env), names=("ffmpeg", "apt-get install ffmpeg"))
        # --frames needs no ffmpeg; --overlay-video does. The progress line: after the first
        # frame (then every 5 s off a terminal), with the frame count, fps and ETA.
        p = run_track("--frames", self.pngs, "--out", self.out(), *self.fast, env=env, quiet=False)
        self.ok(p)
        self.assertRegex(p.stderr.decode(), r"frame 1/10  [0-9.]+ fps  ETA [0-9]+s")
        self.one_error(run_track("--frames", self.pngs, "--out", self.out(), "--overlay-video", os.path.join(self.tmp, "o.mp4"), *self.fast, env=env),
                       names=("ffmpeg", "--overlay-video"))

    def test_frames_of_different_sizes(self):
        # Each image at its own size; a new size starts the tracking afresh (no detector
        # here: no hand after it).
        mixed = os.path.join(self.tmp, "mixed")
        write_frames(mixed, [self.frames[0], self.frames[1], cv2.resize(self.frames[2], (320, 240))])
        out = self.out()
        self.ok(run_track("--frames", mixed, "--out", out, *self.fast))
        lines = read_jsonl(out)
        self.assertEqual([(l["width"], l["height"]) for l in lines], [(640, 480), (640, 480), (320, 240)])
        self.assertEqual([len(l["hands"]) for l in lines], [1, 1, 0])
        # An image that cannot be read: the frames before kept, the file named.
        with open(os.path.join(mixed, "frame_003.png"), "wb") as f:
            f.write(b"not a png")
        out = self.out()
        self.one_error(run_track("--frames", mixed, "--out", out, *self.fast), names=("frame_003.png",))
        self.assertEqual(len(read_jsonl(out)), 3)
        self.assertEqual(read_summary(out)["stopped"], "error")

    def test_sigint_midway(self):
        many = os.path.join(self.tmp, "many")
        write_frames(many, self.frames * 4)  # 40 frames
        video = os.path.join(self.tmp, "many.mkv")
        make_video(many, video)
        for sig, source in ((signal.SIGINT, ["--frames", many]), (signal.SIGTERM, ["--video", video])):
            out = self.out()
            p = subprocess.Popen([TRACK, *source, "--out", out, *self.fast], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=SOURCE_DIR)
            jl = os.path.join(out, "frames.jsonl")
            deadline = time.time() + 120
            while time.time() < deadline and p.poll() is None:
                if os.path.exists(jl):
                    with open(jl) as f:
                        if f.read().count("\n") >= 3:
                            break
                time.sleep(0.05)
            p.send_signal(sig)
            _, err = p.communicate(timeout=TIMEOUT)
            self.assertEqual(p.returncode, 128 + sig, err.decode())
            self.assertIn("interrupted", err.decode())
            lines = read_jsonl(out)
            s = read_summary(out)
            self.assertGreaterEqual(len(lines), 3)
            self.assertLess(len(lines), 40)
            self.assertEqual(s["frames"], len(lines))
            self.assertEqual(s["stopped"], "SIGINT" if sig == signal.SIGINT else "SIGTERM")
            self.assertFalse(s["complete"])
            self.assertEqual([l["frame"] for l in lines], list(range(len(lines))))
            self.assertEqual(sorted(os.listdir(out)), ["frames.jsonl", "summary.json"])  # no temporary left

    def test_bad_flags(self):
        out = self.out()
        v = ["--video", self.video, "--out", out]
        cases = [
            (["--out", out], "no input"),
            (v + ["--frames", self.pngs], "one input"),
            (["--video", self.video], "--out"),
            (v + ["--max-hands", "0"], "--max-hands"),
            (v + ["--max-hands", "100000"], "--max-hands"),
            (v + ["--detect-every", "-1"], "--detect-every"),
            (v + ["--detect-every", "0"], "--hand-box"),
            (v + ["--threads", "0"], "--threads"),
            (["--raw", "0x480", "--out", out], "--raw"),
            (["--raw", "640", "--out", out], "--raw"),
            (["--raw", "640x480x3", "--out", out], "--raw"),
            (v + ["--min-cutoff", "0"], "--min-cutoff"),
            (v + ["--min-cutoff", "nan"], "--min-cutoff"),
            (v + ["--beta", "-1"], "--beta"),
            (v + ["--d-cutoff", "-2"], "--d-cutoff"),
            (v + ["--fps", "0"], "--fps"),
            (v + ["--agree-iou", "1.5"], "--agree-iou"),
            (v + ["--hand-box", "1,2,0,4"], "--hand-box"),
            (v + ["--hand", "middle"], "--hand"),
            (v + ["--bogus"], "--bogus"),
            (v + ["--detector"], "--detector needs a value"),
            (v + ["--overlay-video", os.path.join(self.tmp, "a.mp4"), "--overlay-dir", os.path.join(self.tmp, "d")], "--overlay-dir"),
            (["--video", self.video, "--out", os.path.join(self.video, "sub")], "--out"),
            (["--frames", os.path.join(self.tmp, "nowhere"), "--out", out, *self.fast], "nowhere"),
            (v + ["--detector", os.path.join(self.tmp, "none.safetensors")], "none.safetensors"),
        ]
        for args, name in cases:
            p = run_track(*args)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 1, (args, err))
            self.assertEqual(len(err.splitlines()), 1, (args, err))
            self.assertTrue(err.startswith("error: "), (args, err))
            self.assertIn(name, err, args)
        self.assertEqual(os.listdir(out), [])
        p = run_track("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"--detect-every", p.stdout)


if __name__ == "__main__":
    missing = [what for what, ok in (("numpy/cv2/scipy", np is not None), ("hand_track (%s)" % TRACK, os.path.isfile(TRACK)),
                                      ("hand_demo (%s)" % DEMO, os.path.isfile(DEMO)),
                                      ("ffmpeg (Debian package ffmpeg)", shutil.which("ffmpeg") is not None),
                                      ("the real-world test set (%s)" % REALWORLD, os.path.isdir(REALWORLD))) if not ok]
    if missing:
        print("SKIPPED: missing " + "; ".join(missing))
        sys.exit(77)
    sys.path.insert(0, HERE)
    import unittest_support
    unittest_support.main()
