"""hand_eval --shard K/N and --merge (issue 13, "many machines"): three shards of a run,
merged, give the files one run writes, file for file: pose_estimations.mat,
per_frame.csv, pck.png, vis/*.png and vis/*.obj byte for byte, and summary.json equal in
every key but the three that time a run (wall_time_s, images_per_s, load_time_s, which
are the shards' sums in a merge). Also: each shard's own outputs cover its frames only;
a missing shard, a shard given twice, a shard of another run, an unfinished shard and
--merge with --shard are refused with one `error:` line.
Runs hand_eval on the release's real-world test set (first 7 frames) with the fixture's
random-weight model; exit 77 (skipped) without them.
"""
import filecmp
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
EVAL = os.path.join(BINARY_DIR, "examples", "hand_eval")
WEIGHTS = os.path.join(TESTDATA, "seed1", "weights.safetensors")
DATA = os.path.join(SHARED, "real_world_testset")
TIMEOUT = float(os.environ.get("HANDGRAPH_ROBUSTNESS_TIMEOUT", "600"))
COMMON = ["--dataset", "realworld", "--data", DATA, "--weights", WEIGHTS, "--limit", "7", "--vis", "3", "--threads", "2", "--batch", "2"]
TIMES = ("wall_time_s", "images_per_s", "load_time_s")


def run_eval(*args):
    return subprocess.run([EVAL, *args], capture_output=True, text=True, timeout=TIMEOUT)


def files_under(d):
    out = []
    for root, _, names in os.walk(d):
        for n in names:
            out.append(os.path.relpath(os.path.join(root, n), d))
    return sorted(out)


class Shards(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="handgraph_shards_")
        cls.one = os.path.join(cls.tmp, "one")
        p = run_eval(*COMMON, "--out", cls.one)
        assert p.returncode == 0, p.stderr
        cls.shards = []
        for k in range(3):
            d = os.path.join(cls.tmp, "shard%d" % k)
            p = run_eval(*COMMON, "--out", d, "--shard", "%d/3" % k)
            assert p.returncode == 0, p.stderr
            cls.shards.append(d)
        cls.merged = os.path.join(cls.tmp, "merged")
        p = run_eval(*COMMON, "--out", cls.merged, "--merge", *cls.shards)
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_merged_equals_one_run_file_for_file(self):
        self.assertEqual(files_under(self.merged), files_under(self.one))
        for f in files_under(self.one):
            if f == "summary.json":
                continue
            self.assertTrue(filecmp.cmp(os.path.join(self.one, f), os.path.join(self.merged, f), shallow=False), f)
        with open(os.path.join(self.one, "summary.json")) as f:
            a = json.load(f)
        with open(os.path.join(self.merged, "summary.json")) as f:
            b = json.load(f)
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            if k not in TIMES:
                self.assertEqual(a[k], b[k], k)
        self.assertNotIn("shard", b)

    def test_each_shard_has_its_frames(self):
        for k, d in enumerate(self.shards):
            with open(os.path.join(d, "summary.json")) as f:
                s = json.load(f)
            self.assertEqual(s["shard"], "%d/3" % k)
            self.assertEqual(s["frames"], len(range(k, 7, 3)))
            with open(os.path.join(d, "per_frame.csv")) as f:
                rows = f.read().splitlines()[1:]
            self.assertEqual([int(r.split(",")[0]) for r in rows], list(range(k, 7, 3)))
            vis = sorted(n for n in os.listdir(os.path.join(d, "vis")) if n.endswith(".png")) if os.path.isdir(os.path.join(d, "vis")) else []
            self.assertEqual(vis, ["%05d.png" % i for i in range(k, 3, 3)])
            self.assertTrue(os.path.isfile(os.path.join(d, "shard.bin")))

    def refused(self, *args, names=()):
        out = tempfile.mkdtemp(dir=self.tmp)
        p = run_eval(*COMMON, "--out", out, *args)
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = [l for l in p.stderr.splitlines() if l.startswith("error: ")]
        self.assertEqual(len(lines), 1, p.stderr)
        for n in names:
            self.assertIn(n, lines[0])
        self.assertEqual([f for f in os.listdir(out) if not f.startswith(".")], [])

    def test_refusals(self):
        self.refused("--merge", self.shards[0], self.shards[1], names=("shard 2/3 is missing",))
        self.refused("--merge", self.shards[0], self.shards[0], self.shards[1], names=("given twice",))
        self.refused("--merge", self.one, names=("shard.bin", "not found"))
        other = os.path.join(self.tmp, "other")
        p = run_eval(*COMMON[:-6], "--limit", "6", "--vis", "3", "--threads", "2", "--batch", "2", "--out", other, "--shard", "2/3")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.refused("--merge", self.shards[0], self.shards[1], other, names=("another run",))
        self.refused("--merge", self.shards[0], "--shard", "1/3", names=("--merge", "--shard"))
        self.refused("--shard", "3/3", names=("--shard",))
        self.refused("--shard", "1/0", names=("--shard",))
        self.refused("--shard", "two", names=("--shard", "K/N"))


if __name__ == "__main__":
    if not os.path.isfile(EVAL):
        print("SKIPPED: %s not built" % EVAL)
        sys.exit(77)
    if not os.path.isfile(WEIGHTS):
        print("SKIPPED: no fixture weights in %s (tests/reference/make_testdata.py)" % TESTDATA)
        sys.exit(77)
    if not os.path.isfile(os.path.join(DATA, "params.mat")):
        print("SKIPPED: the release's real-world test set is absent (%s)" % DATA)
        sys.exit(77)
    sys.path.insert(0, HERE)
    import unittest_support
    unittest_support.main()
