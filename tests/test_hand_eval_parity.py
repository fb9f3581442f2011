"""examples/hand_eval on the release's real-world test set (first 20 frames) with the
fixture's random released-style weights, against an independent PyTorch + OpenCV
evaluation written from the spec (tests/reference/eval_reference.py, networks loaded
from the fixture's legacy checkpoints):

- exact parity on PNG-converted crops: the reference decodes the JPEGs with OpenCV (as
  the release does) and writes them losslessly as PNG into a real_world_testset-shaped
  folder; hand_eval on that folder must give the reference's joints where the 2D argmax
  agrees (relative 1e-4), an argmax that differs only at a near-tie of the upsampled
  heat-map (1e-5 relative), depths and meshes everywhere (1e-4);
- on the JPEGs themselves (stb_image's decoder, a few grey levels from libjpeg: see
  test_image.cpp) the estimates move: bounded here, and the measured values printed;
- summary.json and per_frame.csv equal numpy on pose_estimations.mat (1e-6).

Exit 77 (skipped) when the release's data, hand_eval or the fixture's weights are absent.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import test_hand_eval as th  # noqa: E402  (exits 77 without hand_eval or the weights)
from test_hand_eval import np, sio  # noqa: E402

SHARED = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(th.SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
TESTSET = os.path.join(SHARED, "real_world_testset")
FRAMES = 20

if not os.path.isfile(os.path.join(TESTSET, "params.mat")):
    print("SKIPPED: the real-world test set is absent (%s)" % TESTSET)
    sys.exit(77)


def read_obj_vertices(path):
    with open(path) as f:
        return np.array([[float(x) for x in l.split()[1:4]] for l in f if l.startswith("v ")])


class RealWorld(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_hand_eval_parity.")
        cls.png = os.path.join(cls.tmp, "real_world_png")
        cls.ref_path = os.path.join(cls.tmp, "reference.npz")
        r = subprocess.run([sys.executable, os.path.join(th.REFERENCE, "eval_reference.py"), "--dataset", "realworld",
                            "--data", TESTSET, "--limit", str(FRAMES), "--png-copy", cls.png,
                            "--checkpoints", th.CHECKPOINTS, "--template", th.template_path(), "--out", cls.ref_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if r.returncode != 0:
            raise RuntimeError("eval_reference.py failed: " + r.stderr)
        cls.ref = np.load(cls.ref_path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_png_crops_exact(self):
        out = os.path.join(self.tmp, "out_png")
        r = th.hand_eval("--dataset", "realworld", "--data", self.png, "--weights", th.WEIGHTS, "--out", out,
                         "--limit", FRAMES, "--threads", 2, "--vis", FRAMES)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, s = th.numpy_metrics_check(self, out)
        self.assertEqual(s["frames"], FRAMES)
        self.assertEqual(s["dataset"], "real_world_testset")
        differ, worst = th.compare_with_reference(self, m, self.ref)
        self.assertLessEqual(differ, FRAMES * 21 // 20, "more than 5% of the argmaxes at near-ties?")
        mesh_worst = 0.0
        for i in range(FRAMES):
            mine = read_obj_vertices(os.path.join(out, "vis", "%05d.obj" % i))
            theirs = self.ref["mesh_xyz"][i].astype(np.float64)
            scale = max(1.0, float(np.abs(theirs).max()))
            mesh_worst = max(mesh_worst, float(np.abs(mine - theirs).max()) / scale)
        self.assertLessEqual(mesh_worst, 1e-4)
        print("real-world, PNG crops, %d frames: %d of %d argmaxes differ (near-ties), worst relative joint "
              "difference %.2g, mesh %.2g; mean error %.4f mm (reference %.4f)"
              % (FRAMES, differ, FRAMES * 21, worst, mesh_worst, s["mean_error_mm"], self.ref["mean_error_mm"]))

    def test_jpeg_bounded(self):
        out = os.path.join(self.tmp, "out_jpeg")
        r = th.hand_eval("--dataset", "realworld", "--data", TESTSET, "--weights", th.WEIGHTS, "--out", out,
                         "--limit", FRAMES, "--threads", 2, "--batch", 5)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, s = th.numpy_metrics_check(self, out)
        np.testing.assert_array_equal(m["gt_pose_xyz"], self.ref["gt_pose_xyz"])
        est, ref = m["est_pose_xyz"], self.ref["est_pose_xyz"].astype(np.float64)
        agree = (m["est_uv"] == self.ref["est_uv"]).all(axis=2).mean()
        z_rel = float((np.abs(est[..., 2] - ref[..., 2]) / np.abs(ref[..., 2])).max())
        mean_diff = abs(s["mean_error_mm"] - float(self.ref["mean_error_mm"]))
        print("real-world, JPEG (stb_image) vs reference (libjpeg), %d frames: argmax agrees on %.1f%% of joints, "
              "depth differs by <= %.2g (relative), mean error %.3f vs %.3f mm (difference %.3f mm)"
              % (FRAMES, 100 * agree, z_rel, s["mean_error_mm"], self.ref["mean_error_mm"], mean_diff))
        # Random weights give flat heat-maps, so a grey level moves some argmaxes far;
        # measured (20 frames, seed 1): 87.6% agree, depth 0.43%, mean error 0.44 mm.
        self.assertGreaterEqual(agree, 0.75)
        self.assertLessEqual(z_rel, 0.02)
        self.assertLessEqual(mean_diff, 3.0)


if __name__ == "__main__":
    th.torch.set_num_threads(2)
    import unittest_support
    unittest_support.main()
