"""hand_prepare, the prepared weight file's command line (issue 15's load time), through the
real binaries:
  - it writes a file that hand_demo takes in place of the converted one, with the same
    joints and mesh (JSON values equal; the C++ side checks every output bit for bit,
    tests/test_prepared.cpp);
  - --help; refusals (one `error:` line naming what is wrong, exit 1, nothing written): no
    input, no -o, two inputs, an unknown flag, a missing or truncated input, a prepared file
    as the input, the output over the input, an output folder that does not exist;
  - hand_demo refuses a prepared file cut short, in one line naming it.
Runs on the fixture's random-weight model (tests/reference/make_testdata.py).
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
PREPARE = os.path.join(BINARY_DIR, "examples", "hand_prepare")
DEMO = os.path.join(BINARY_DIR, "examples", "hand_demo")
WEIGHTS = os.path.join(TESTDATA, "seed1", "weights.safetensors")
CROP = os.path.join(TESTDATA, "images", "synthetic_0.png")
TIMEOUT = float(os.environ.get("HANDGRAPH_ROBUSTNESS_TIMEOUT", "300"))


class HandPrepare(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="handgraph_prepare_")
        cls.prepared = os.path.join(cls.tmp, "prepared.safetensors")
        p = subprocess.run([PREPARE, WEIGHTS, "-o", cls.prepared], capture_output=True, text=True, timeout=TIMEOUT)
        if p.returncode != 0:
            raise AssertionError("hand_prepare failed: %s" % p.stderr)
        cls.prepare_stderr = p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_prepare(self, *args):
        return subprocess.run([PREPARE, *args], capture_output=True, text=True, timeout=TIMEOUT)

    def refused(self, *args, names=(), out=None):
        before = sorted(os.listdir(self.tmp))
        p = self.run_prepare(*args)
        what = " ".join(args)
        self.assertEqual(p.returncode, 1, "%s: exit %d, %r" % (what, p.returncode, p.stderr))
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "%s: %r" % (what, p.stderr))
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        for n in names:
            self.assertIn(n, lines[0])
        self.assertEqual(sorted(os.listdir(self.tmp)), before, "%s: left files behind" % what)
        if out:
            self.assertFalse(os.path.exists(out))
        return lines[0]

    def demo_json(self, weights):
        out = os.path.join(self.tmp, "r_%d.json" % len(os.listdir(self.tmp)))
        p = subprocess.run([DEMO, "--weights", weights, "--image", CROP, "--json", out], capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            j = json.load(f)
        os.remove(out)
        return j

    def test_prepared_file_gives_the_same_result(self):
        self.assertIn("wrote " + self.prepared, self.prepare_stderr)
        a, b = self.demo_json(WEIGHTS), self.demo_json(self.prepared)
        self.assertEqual(b["model"], self.prepared)
        for k in ("uv", "pose_xyz", "mesh_xyz", "pose_uvd"):
            if k in a:
                self.assertEqual(a[k], b[k], k)
        self.assertIn("mesh_xyz", a)

    def test_help(self):
        p = self.run_prepare("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: hand_prepare", p.stdout)
        self.assertIn("--kernels", p.stdout)

    def test_refusals(self):
        out = os.path.join(self.tmp, "x.safetensors")
        self.refused(names=("no input weight file",))
        self.refused(WEIGHTS, names=("no output",))
        self.refused(WEIGHTS, WEIGHTS, "-o", out, names=("one input weight file only",), out=out)
        self.refused(WEIGHTS, "-o", out, "--frobnicate", names=("--frobnicate",), out=out)
        self.refused(WEIGHTS, "-o", names=("-o needs a value",))
        self.refused(os.path.join(self.tmp, "missing.safetensors"), "-o", out, names=("missing.safetensors", "cannot open"), out=out)
        self.refused(self.prepared, "-o", out, names=("already a prepared weight file",), out=out)
        self.refused(WEIGHTS, "-o", os.path.join(self.tmp, "no_such_folder", "x.safetensors"), names=("does not exist",))
        self.refused(WEIGHTS, "-o", out, "--kernels", "avx9000", names=("avx9000",), out=out)
        with open(WEIGHTS, "rb") as f:
            raw = f.read()
        cut = os.path.join(self.tmp, "cut.safetensors")
        with open(cut, "wb") as f:
            f.write(raw[: len(raw) // 2])
        try:
            self.refused(cut, "-o", out, names=(cut, "truncated"), out=out)
            copy = os.path.join(self.tmp, "copy.safetensors")
            shutil.copyfile(WEIGHTS, copy)
            try:
                self.refused(copy, "-o", copy, names=("would replace the converted weights",))
                with open(copy, "rb") as f:
                    self.assertEqual(f.read(), raw)
            finally:
                os.remove(copy)
        finally:
            os.remove(cut)

    def test_demo_refuses_a_cut_prepared_file(self):
        with open(self.prepared, "rb") as f:
            raw = f.read()
        for frac in (0.3, 0.999):
            cut = os.path.join(self.tmp, "cut_prepared.safetensors")
            with open(cut, "wb") as f:
                f.write(raw[: int(len(raw) * frac)])
            out_dir = tempfile.mkdtemp(dir=self.tmp)
            p = subprocess.run([DEMO, "--weights", cut, "--image", CROP, "--json", os.path.join(out_dir, "r.json")],
                               capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(p.returncode, 1, p.stderr)
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertTrue(lines[0].startswith("error: ") and cut in lines[0] and "truncated" in lines[0], lines[0])
            self.assertEqual(os.listdir(out_dir), [])
            shutil.rmtree(out_dir)
            os.remove(cut)


if __name__ == "__main__":
    for b in (PREPARE, DEMO):
        if not os.path.isfile(b):
            print("SKIPPED: %s not built" % b)
            sys.exit(77)
    if not os.path.isfile(WEIGHTS) or not os.path.isfile(CROP):
        print("SKIPPED: no fixture weights or crop in %s (tests/reference/make_testdata.py)" % TESTDATA)
        sys.exit(77)
    sys.path.insert(0, HERE)
    import unittest_support
    unittest_support.main()
