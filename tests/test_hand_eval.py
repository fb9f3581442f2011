"""examples/hand_eval end to end on the generated STB-shaped fixture
(tests/reference/eval_stb_fixture.py) with the fixture's random released-style weights:

- outputs: every file present and well formed; ground truth as the spec's transforms
  give it; summary.json and per_frame.csv equal a numpy computation from
  pose_estimations.mat (1e-6); estimates equal an independent PyTorch + OpenCV
  evaluation (tests/reference/eval_reference.py) where the 2D argmax agrees, and the
  argmax differs only at near-ties of the upsampled heat-map;
- resume: a run killed with SIGKILL partway, then resumed (other threads and batch),
  gives the same files as an uninterrupted run;
- refusals: bad arguments, missing data set files, unwritable --out: exit 1, one line
  `error: ...`, no outputs;
- progress: a bar on a terminal, plain lines otherwise.

The real-world test set is covered by test_hand_eval_parity.py. Exit 77 (skipped) when
hand_eval is not built or the fixture has no weight file.
"""
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
BINARY_DIR = os.environ.get("HANDGRAPH_BINARY_DIR") or os.path.join(SOURCE_DIR, "build")
TESTDATA = os.environ.get("HANDGRAPH_TESTDATA") or os.path.join(BINARY_DIR, "tests", "testdata")
REFERENCE = os.path.join(SOURCE_DIR, "tests", "reference")
sys.path.insert(0, REFERENCE)
sys.dont_write_bytecode = True

try:
    import cv2
    import numpy as np
    import scipy.io as sio
    import torch
except ImportError as e:  # pragma: no cover
    print("SKIPPED: %s" % e)
    sys.exit(77)

HAND_EVAL = os.path.join(BINARY_DIR, "examples", "hand_eval")
WEIGHTS = os.path.join(TESTDATA, "seed1", "weights.safetensors")
CHECKPOINTS = os.path.join(TESTDATA, "seed1", "legacy")
OUTPUTS = ["pck.png", "per_frame.csv", "pose_estimations.mat", "summary.json"]
# summary.json keys that describe how a run went, not what it computed
RUN_KEYS = {"wall_time_s", "images_per_s", "frames_estimated", "frames_resumed", "load_time_s", "threads", "batch", "kernels"}

if not os.access(HAND_EVAL, os.X_OK):
    print("SKIPPED: %s not built (HANDGRAPH_BUILD_EXAMPLES=OFF?)" % HAND_EVAL)
    sys.exit(77)
if not os.path.isfile(WEIGHTS):
    print("SKIPPED: %s absent (see %s/README)" % (WEIGHTS, TESTDATA))
    sys.exit(77)

import eval_reference  # noqa: E402
import pipeline  # noqa: E402


def template_path():
    """The template the fixture's weight files were made with."""
    synthetic = os.path.join(TESTDATA, "synthetic_template.obj")
    if os.path.isfile(synthetic):
        return synthetic
    shared = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
    return os.path.join(shared, "0214_lowP_vn_g.0001.obj")


def hand_eval(*args, **kw):
    return subprocess.run([HAND_EVAL] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


def files_under(d):
    out = []
    for root, _, names in os.walk(d):
        out += [os.path.relpath(os.path.join(root, n), d) for n in names]
    return sorted(out)


def numpy_metrics_check(tc, out_dir, tol=1e-6):
    """summary.json and per_frame.csv against numpy on pose_estimations.mat."""
    m = sio.loadmat(os.path.join(out_dir, "pose_estimations.mat"))
    with open(os.path.join(out_dir, "summary.json")) as f:
        s = json.load(f)
    ref = eval_reference.metrics(m["est_pose_xyz"], m["gt_pose_xyz"])
    tc.assertEqual(s["frames"], m["est_pose_xyz"].shape[0])
    for key in ("mean_error_mm", "root_relative_error_mm", "auc_20_50"):
        tc.assertAlmostEqual(s[key], float(ref[key]), delta=tol, msg=key)
    np.testing.assert_allclose(s["pck_thresholds_mm"], ref["pck_thresholds_mm"], rtol=0, atol=tol)
    np.testing.assert_allclose(s["pck"], ref["pck"], rtol=0, atol=tol)
    tc.assertEqual(list(s["joint_error_mm"].keys()), eval_reference.JOINTS)
    np.testing.assert_allclose(list(s["joint_error_mm"].values()), ref["joint_error_mm"], rtol=0, atol=tol)
    with open(os.path.join(out_dir, "per_frame.csv")) as f:
        lines = f.read().splitlines()
    tc.assertEqual(lines[0], "index,image_id,mean_error_mm,root_relative_error_mm")
    rows = [l.rsplit(",", 2) for l in lines[1:]]
    tc.assertEqual(len(rows), s["frames"])
    paths = [str(p).strip() for p in m["image_paths"]]
    for i, (head, err, rel) in enumerate(rows):
        tc.assertEqual(head, "%d,%s" % (i, paths[i]))
        tc.assertAlmostEqual(float(err), ref["frame_error_mm"][i], delta=max(tol, 1e-8 * abs(float(err))))
        tc.assertAlmostEqual(float(rel), ref["root_relative_frame_error_mm"][i], delta=max(tol, 1e-8 * abs(float(rel))))
    return m, s


def compare_with_reference(tc, mat, ref, rel_tol=1e-4, tie_tol=1e-5):
    """Estimates of hand_eval (pose_estimations.mat) vs eval_reference.py's (npz): equal
    ground truth; where the 2D argmax agrees, joints equal to rel_tol; where it differs,
    the reference's upsampled heat-map at hand_eval's pixel is within tie_tol (relative)
    of its maximum (a near-tie); depths (z) agree everywhere. Returns the number of
    differing argmaxes."""
    np.testing.assert_array_equal(mat["gt_pose_xyz"], ref["gt_pose_xyz"])
    est, ref_est = mat["est_pose_xyz"], ref["est_pose_xyz"].astype(np.float64)
    uv, ref_uv = mat["est_uv"], ref["est_uv"]
    tc.assertEqual(est.shape, ref_est.shape)
    scale = np.maximum(np.abs(ref_est), 1.0)
    same = (uv == ref_uv).all(axis=2)
    worst = (np.abs(est - ref_est) / scale)[same].max()
    tc.assertLessEqual(worst, rel_tol, "joints where the argmax agrees")
    tc.assertLessEqual((np.abs(est - ref_est) / scale)[..., 2].max(), rel_tol, "depths")
    for f, j in zip(*np.nonzero(~same)):
        up = pipeline.upsample_heatmaps(ref["heatmaps"][f])[j]
        best, here = float(up.max()), float(up[uv[f, j, 1], uv[f, j, 0]])
        tc.assertLessEqual((best - here) / max(abs(best), 1e-30), tie_tol,
                           "frame %d joint %d: argmax %s vs reference %s is no near-tie" % (f, j, uv[f, j], ref_uv[f, j]))
    return int((~same).sum()), float(worst)


class Fixture(object):
    tmp = None
    stb = None

    @classmethod
    def get(cls):
        if cls.tmp is None:
            cls.tmp = tempfile.mkdtemp(prefix="test_hand_eval.")
            r = subprocess.run([sys.executable, os.path.join(REFERENCE, "eval_stb_fixture.py"), os.path.join(cls.tmp, "fx")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            if r.returncode != 0:
                raise RuntimeError("eval_stb_fixture.py failed: " + r.stderr)
            cls.stb = os.path.join(cls.tmp, "fx", "stb")
        return cls

    @classmethod
    def cleanup(cls):
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)


def stb_args(fx, out, *more):
    return ["--dataset", "stb", "--data", fx.stb, "--bboxes", os.path.join(fx.tmp, "fx", "bboxes.mat"), "--weights", WEIGHTS,
            "--out", out] + list(more)


class StbEndToEnd(unittest.TestCase):
    def test_outputs_metrics_and_reference(self):
        fx = Fixture.get()
        out = os.path.join(fx.tmp, "stb_out")
        r = hand_eval(*stb_args(fx, out, "--threads", 2, "--vis", 2))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hand_eval: 7/7 frames (100%)", r.stderr)  # plain progress lines (not a terminal)
        self.assertEqual(files_under(out), sorted(OUTPUTS + ["vis/00000.obj", "vis/00000.png", "vis/00001.obj", "vis/00001.png"]))
        m, s = numpy_metrics_check(self, out)
        self.assertEqual(s["dataset"], "stb")
        self.assertEqual(s["frames"], 7)
        self.assertEqual(s["frames_resumed"], 0)
        self.assertEqual(s["threads"], 2)
        self.assertGreater(s["images_per_s"], 0)
        np.testing.assert_array_equal(m["image_ids"], np.arange(7).reshape(1, 7))
        self.assertEqual([str(p).strip() for p in m["image_paths"]],
                         ["B1Counting/SK_color_%d.png" % i for i in range(3)] + ["B1Random/SK_color_%d.png" % i for i in range(4)])
        expected = np.fromfile(os.path.join(fx.tmp, "fx", "expected_pose.bin"), "<f8").reshape(7, 21, 3)
        np.testing.assert_allclose(m["gt_pose_xyz"], expected, rtol=0, atol=1e-12)
        self.assertEqual(m["est_pose_xyz"].shape, (7, 21, 3))
        np.testing.assert_allclose(m["est_pose_xyz"][:, 0], expected[:, 0], rtol=0, atol=1e-5)  # root given (float32)
        self.assertTrue(((m["est_uv"] >= 0) & (m["est_uv"] <= 255)).all())
        pck = cv2.imread(os.path.join(out, "pck.png"))
        self.assertEqual(pck.shape, (480, 640, 3))
        vis = cv2.imread(os.path.join(out, "vis", "00001.png"))
        self.assertEqual(vis.shape, (256, 512, 3))
        with open(os.path.join(out, "vis", "00001.obj")) as f:
            obj = f.read().splitlines()
        self.assertEqual(sum(l.startswith("v ") for l in obj), 954)
        self.assertGreater(sum(l.startswith("f ") for l in obj), 1000)

        # An independent evaluation from the spec (PyTorch + OpenCV) on the same frames.
        ref_path = os.path.join(fx.tmp, "stb_ref.npz")
        r = subprocess.run([sys.executable, os.path.join(REFERENCE, "eval_reference.py"), "--dataset", "stb", "--data", fx.stb,
                            "--bboxes", os.path.join(fx.tmp, "fx", "bboxes.mat"), "--checkpoints", CHECKPOINTS,
                            "--template", template_path(), "--out", ref_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        differ, worst = compare_with_reference(self, m, np.load(ref_path))
        print("STB fixture vs reference: %d of 147 argmaxes differ (near-ties), worst relative joint difference %.2g"
              % (differ, worst))

    def test_default_bboxes(self):
        fx = Fixture.get()
        shutil.copyfile(os.path.join(fx.tmp, "fx", "bboxes.mat"), os.path.join(fx.tmp, "fx", "STB_eval_bboxes.mat"))
        try:
            out = os.path.join(fx.tmp, "stb_default_boxes")
            r = hand_eval("--dataset", "stb", "--data", fx.stb, "--weights", WEIGHTS, "--out", out, "--limit", 1)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(files_under(out), OUTPUTS)
        finally:
            os.remove(os.path.join(fx.tmp, "fx", "STB_eval_bboxes.mat"))


def checkpoint_frames(path):
    """Frames done in a progress.partial.bin (evaluate.hpp's format)."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"HGEVALC1"
    (flen,) = struct.unpack_from("<Q", b, 8)
    return struct.unpack_from("<QQQQ", b, 16 + flen)[3]


class Resume(unittest.TestCase):
    def test_killed_run_resumes_to_the_same_outputs(self):
        fx = Fixture.get()
        full = os.path.join(fx.tmp, "resume_full")
        r = hand_eval(*stb_args(fx, full, "--threads", 2, "--batch", 4, "--vis", 2))
        self.assertEqual(r.returncode, 0, r.stderr)

        out = os.path.join(fx.tmp, "resume_killed")
        ck = os.path.join(out, "progress.partial.bin")
        p = subprocess.Popen([HAND_EVAL] + [str(a) for a in stb_args(fx, out, "--threads", 1, "--batch", 1, "--vis", 2)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while not os.path.exists(ck) and p.poll() is None and time.time() < deadline:
                time.sleep(0.01)
            os.kill(p.pid, signal.SIGKILL)
        finally:
            p.wait()
        self.assertEqual(p.returncode, -signal.SIGKILL, "hand_eval ended before it could be killed")
        done = checkpoint_frames(ck)
        self.assertTrue(1 <= done < 7, done)
        self.assertFalse(any(os.path.exists(os.path.join(out, n)) for n in OUTPUTS), files_under(out))

        # The checkpoint of another run (other frames) is refused, and left alone.
        r = hand_eval(*stb_args(fx, out, "--limit", 3, "--resume"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("belongs to another run", r.stderr)
        self.assertEqual(checkpoint_frames(ck), done)

        r = hand_eval(*stb_args(fx, out, "--threads", 2, "--batch", 3, "--vis", 2, "--resume"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resumed %d frames" % done, r.stderr)
        self.assertEqual(files_under(out), files_under(full))  # checkpoint and temporaries gone
        for name in files_under(full):
            with open(os.path.join(full, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
                ba, bb = a.read(), b.read()
            if name == "summary.json":
                ja, jb = json.loads(ba), json.loads(bb)
                self.assertEqual(jb["frames_resumed"], done)
                self.assertEqual(jb["frames_estimated"], 7 - done)
                ba = {k: v for k, v in ja.items() if k not in RUN_KEYS}
                bb = {k: v for k, v in jb.items() if k not in RUN_KEYS}
            self.assertEqual(ba, bb, name)
        print("resume: killed after %d of 7 frames; resumed run identical to the uninterrupted one" % done)


class Refusals(unittest.TestCase):
    def refused(self, args, needle, out=None):
        r = hand_eval(*args)
        self.assertEqual(r.returncode, 1, "%s: %s" % (args, r.stderr))
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("error: "), r.stderr)
        self.assertIn(needle, lines[0])
        if out is not None:
            self.assertFalse(any(os.path.exists(os.path.join(out, n)) for n in OUTPUTS + ["vis", "progress.partial.bin"]),
                             "%s left outputs" % args)

    def test_arguments(self):
        fx = Fixture.get()
        out = os.path.join(fx.tmp, "refused")
        base = stb_args(fx, out)
        self.assertEqual(hand_eval().returncode, 1)
        h = hand_eval("--help")
        self.assertEqual(h.returncode, 0)
        self.assertIn("usage: hand_eval --dataset realworld|stb", h.stdout)
        for args, needle in [
            (base + ["--frobnicate"], 'unknown argument "--frobnicate"'),
            (base[2:], "--dataset is required"),
            (["--dataset", "mpii"] + base[2:], '"mpii" is not one of realworld, stb'),
            ([a for a in base if a not in ("--weights", WEIGHTS)], "--weights is required"),
            ([a for a in base if a not in ("--out", out)], "--out is required"),
            (base + ["--limit", "0"], "--limit"),
            (base + ["--limit", "ten"], '"ten" is not a whole number'),
            (base + ["--threads", "0"], "--threads"),
            (base + ["--batch", "-2"], "--batch"),
            (base + ["--vis", "1.5"], "--vis"),
            (base + ["--limit"], "--limit needs a value"),
            (["--dataset", "realworld"] + base[2:], "--bboxes applies to --dataset stb only"),
        ]:
            self.refused(args, needle, out)
        self.assertFalse(os.path.exists(out))

    def test_missing_data(self):
        fx = Fixture.get()
        out = os.path.join(fx.tmp, "refused_data")
        empty = os.path.join(fx.tmp, "empty")
        os.makedirs(empty, exist_ok=True)
        self.refused(["--dataset", "realworld", "--data", empty, "--weights", WEIGHTS, "--out", out], "params.mat", out)
        self.refused(["--dataset", "realworld", "--data", os.path.join(fx.tmp, "nowhere"), "--weights", WEIGHTS, "--out", out],
                     "nowhere' not found", out)
        # STB without the boxes file beside it: names the file it looked for.
        self.refused(["--dataset", "stb", "--data", fx.stb, "--weights", WEIGHTS, "--out", out], "STB_eval_bboxes.mat", out)
        self.refused(stb_args(fx, out)[:4] + ["--bboxes", os.path.join(fx.tmp, "none.mat"), "--weights", WEIGHTS, "--out", out],
                     "none.mat' not found", out)
        # A frame's image missing: refused before anything runs.
        broken = os.path.join(fx.tmp, "broken")
        shutil.copytree(fx.stb, os.path.join(broken, "stb"))
        os.remove(os.path.join(broken, "stb", "B1Random", "SK_color_2.png"))
        self.refused(["--dataset", "stb", "--data", os.path.join(broken, "stb"), "--bboxes", os.path.join(fx.tmp, "fx", "bboxes.mat"),
                      "--weights", WEIGHTS, "--out", out], "frame 5: image", out)
        # Labels missing.
        os.remove(os.path.join(broken, "stb", "labels", "B1Random_SK.mat"))
        self.refused(["--dataset", "stb", "--data", os.path.join(broken, "stb"), "--bboxes", os.path.join(fx.tmp, "fx", "bboxes.mat"),
                      "--weights", WEIGHTS, "--out", out], "B1Random_SK.mat", out)
        # Weights missing or not a weight file.
        self.refused(stb_args(fx, out)[:6] + ["--weights", os.path.join(fx.tmp, "no.safetensors"), "--out", out], "no.safetensors", out)
        junk = os.path.join(fx.tmp, "junk.safetensors")
        with open(junk, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
        self.refused(stb_args(fx, out)[:6] + ["--weights", junk, "--out", out], "junk.safetensors", out)
        self.assertFalse(os.path.exists(out))

    def test_unwritable_out(self):
        fx = Fixture.get()
        a_file = os.path.join(fx.tmp, "a_file")
        with open(a_file, "w") as f:
            f.write("x")
        self.refused(stb_args(fx, a_file), "exists and is not a folder")
        self.refused(stb_args(fx, os.path.join(a_file, "sub")), "cannot create folder")
        if os.geteuid() != 0:  # root writes anywhere
            ro = os.path.join(fx.tmp, "read_only")
            os.makedirs(ro)
            os.chmod(ro, 0o555)
            try:
                self.refused(stb_args(fx, ro), "is not writable", ro)
            finally:
                os.chmod(ro, 0o755)


class Progress(unittest.TestCase):
    def test_bar_on_a_terminal(self):
        fx = Fixture.get()
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([HAND_EVAL] + stb_args(fx, os.path.join(fx.tmp, "tty_out"), "--limit", "2", "--batch", "1"),
                                 stdout=subprocess.DEVNULL, stderr=slave)
            os.close(slave)
            chunks = []
            while True:
                try:
                    b = os.read(master, 4096)
                except OSError:  # EIO: the other side closed
                    break
                if not b:
                    break
                chunks.append(b)
            p.wait()
        finally:
            os.close(master)
        text = b"".join(chunks).decode()
        self.assertEqual(p.returncode, 0, text)
        self.assertIn("\r[", text)
        self.assertIn("2/2 100%", text)
        self.assertIn("img/s  ETA", text)
        self.assertNotIn("frames (", text)  # no plain progress lines


if __name__ == "__main__":
    torch.set_num_threads(2)
    import unittest_support
    try:
        rc = unittest_support.run()
    finally:
        Fixture.cleanup()
    sys.exit(rc)
