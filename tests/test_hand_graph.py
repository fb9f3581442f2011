"""tests/reference/hand_graph.py against the spec's checked values (release template) and
the synthetic template's level sizes. Exit 77 (skipped) without numpy <= 1.24 / scipy."""
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))

try:
    import numpy as np
    import scipy.sparse  # noqa: F401
except ImportError as e:
    print("SKIPPED: %s" % e)
    sys.exit(77)
if tuple(int(x) for x in np.__version__.split(".")[:2]) > (1, 24):
    print("SKIPPED: numpy %s > 1.24: its argsort is not the release's" % np.__version__)
    sys.exit(77)

import hand_graph  # noqa: E402
import synthetic_template  # noqa: E402


class HandGraph(unittest.TestCase):
    def test_release_template(self):
        shared = os.environ.get("HANDGRAPH_SHARED_DATA", os.path.join(HERE, "..", "..", "shared", "data", "hand-graph-cnn"))
        obj = os.path.join(shared, "0214_lowP_vn_g.0001.obj")
        if not os.path.isfile(obj):
            self.skipTest("%s not found" % obj)
        failures = []
        g = hand_graph.build_hand_graph(obj)
        failures += ["release: " + p for p in hand_graph.check_release(g)]
        if g["faces"].shape != (1892, 3) or g["num_vertices"] != 954 or int(g["mask"].sum()) != 954:
            failures.append("release: faces %s, %d vertices" % (g["faces"].shape, g["num_vertices"]))
        print("release template: perm sha256 %s" % hand_graph.perm_sha256(g["perm"]))
        self.assertEqual(failures, [])

    def test_synthetic_template(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "synthetic.obj")
            synthetic_template.write_obj(path)
            g = hand_graph.build_hand_graph(path)
        sizes = [L.shape[0] for L in g["laplacians"]]
        self.assertEqual((sizes, g["num_vertices"]), ([1280, 640, 320, 160, 80], 954), "synthetic: level sizes, vertices")


if __name__ == "__main__":
    import unittest_support
    unittest_support.main()
