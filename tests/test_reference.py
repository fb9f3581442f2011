"""Tests of the PyTorch reference (tests/reference/handnet.py, pipeline.py) against the
spec's formulas, and of the fixture's self-consistency (checkpoints <-> converted
weights <-> reference outputs) when HANDGRAPH_TESTDATA has been made.

Exit 77 (skipped) only when torch/numpy are missing.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "reference"))
TSV = os.path.join(SOURCE_DIR, "..", "shared", "docs", "checkpoint-keys.tsv")

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print("SKIPPED: %s" % e)
    sys.exit(77)

import handnet  # noqa: E402
import pipeline  # noqa: E402
import st_numpy  # noqa: E402

torch.set_num_threads(2)


class NetworkPieces(unittest.TestCase):
    def test_state_dict_keys_equal_tsv(self):
        if not os.path.isfile(TSV):
            self.skipTest("checkpoint-keys.tsv absent")
        table = handnet.read_key_table(TSV)
        for stem, net in zip(handnet.STEMS, handnet.build_nets()):
            got = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in net.state_dict().items()]
            self.assertEqual(got, table[stem], stem)

    def test_cheb_conv_feature_order(self):
        """T0 = x, T1 = L x, T2 = 2 L T1 - T0; features fin * K + k; dense and sparse L."""
        rng = np.random.RandomState(0)
        V, Fin, Fout, B = 7, 3, 4, 2
        L = rng.standard_normal((V, V)).astype(np.float32)
        x = rng.standard_normal((B, V, Fin)).astype(np.float32)
        lin = torch.nn.Linear(Fin * 3, Fout)
        W, b = lin.weight.detach().numpy().astype(np.float64), lin.bias.detach().numpy().astype(np.float64)
        expected = np.zeros((B, V, Fout))
        for n in range(B):
            T = [x[n].astype(np.float64)]
            T.append(L @ T[0])
            T.append(2 * L @ T[1] - T[0])
            feats = np.zeros((V, Fin * 3))
            for fin in range(Fin):
                for k in range(3):
                    feats[:, fin * 3 + k] = T[k][:, fin]
            expected[n] = feats @ W.T + b
        dense = handnet.cheb_conv(lin, torch.from_numpy(L), torch.from_numpy(x)).detach().numpy()
        sparse = handnet.cheb_conv(lin, torch.from_numpy(L).to_sparse(), torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(dense, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(sparse, expected, rtol=1e-4, atol=1e-4)

    def test_graph_upsample_and_pool(self):
        x = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
        up = handnet.graph_upsample(x)
        self.assertEqual(tuple(up.shape), (2, 12, 2))
        for n in range(3):
            for j in range(4):
                self.assertTrue(torch.equal(up[:, 4 * n + j], x[:, n]))
        y = torch.randn(2, 8, 3)
        pooled = handnet.graph_maxpool(y)
        self.assertTrue(torch.equal(pooled[:, 1], y[:, 4:8].amax(1)))

    def test_residual_skip_takes_raw_input(self):
        torch.manual_seed(0)
        for cin, cout in ((8, 8), (4, 8)):
            r = handnet.Residual(cin, cout).eval()
            for bn in (r.bn, r.bn1, r.bn2):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
            x = torch.randn(1, cin, 6, 6)
            with torch.no_grad():
                def bnr(bn, t):
                    return torch.relu((t - bn.running_mean[None, :, None, None]) /
                                      torch.sqrt(bn.running_var[None, :, None, None] + 1e-5) *
                                      bn.weight[None, :, None, None] + bn.bias[None, :, None, None])
                y = r.conv3(bnr(r.bn2, r.conv2(bnr(r.bn1, r.conv1(bnr(r.bn, x))))))
                skip = x if cin == cout else r.conv4(x)
                torch.testing.assert_close(r(x), y + skip)

    def test_randomize_is_deterministic_and_nontrivial(self):
        nets = handnet.randomize(handnet.build_nets(), 4)
        first = [{k: v.clone() for k, v in n.state_dict().items()} for n in nets]
        handnet.randomize(nets, 4)  # same seed again: the same weights
        for sd, net in zip(first, nets):
            for k, v in net.state_dict().items():
                self.assertTrue(torch.equal(sd[k], v), k)
        bn = nets[0].r4.bn1
        self.assertGreater(float(bn.running_mean.abs().mean()), 1e-3)
        self.assertGreater(float((bn.running_var - 1).abs().mean()), 1e-2)


class PipelinePieces(unittest.TestCase):
    def test_network_input(self):
        crop = np.zeros((256, 256, 3), np.uint8)
        crop[0, 0] = (255, 0, 51)  # B, G, R
        x = pipeline.network_input(crop)
        self.assertEqual(tuple(x.shape), (1, 3, 256, 256))
        self.assertEqual(x[0, :, 0, 0].tolist(), [0.5, -0.5, np.float32(51) / np.float32(255) - np.float32(0.5)])

    def test_heatmap_uv(self):
        hm = np.zeros((2, 64, 64), np.float32)
        hm[0, 20, 37] = 1.0  # row 20 (v), column 37 (u)
        hm[1] = 1.0  # all equal: the first maximum in row-major order
        uv, margin = pipeline.heatmap_uv(hm, with_margin=True)
        up = pipeline.upsample_heatmaps(hm)
        # the bilinear resize peaks on the 4x4 block around the source pixel's centre
        self.assertTrue(4 * 37 <= uv[0, 0] <= 4 * 37 + 3 and 4 * 20 <= uv[0, 1] <= 4 * 20 + 3, uv[0])
        self.assertEqual(up[0, uv[0, 1], uv[0, 0]], up[0].max())
        self.assertEqual(uv[1].tolist(), [0, 0])
        self.assertEqual(margin[1], 0.0)

    def test_uvd_to_xyz(self):
        rng = np.random.RandomState(1)
        uvd = rng.uniform(0, 1, (5, 3)).astype(np.float32)
        cam, bbox, root, scale = [600.0, 610.0, 320.0, 240.0], [200.0, 120.0, 256.0, 300.0], [-3.2, 11.0, 42.4], 5.0
        xyz = pipeline.uvd_to_xyz(uvd, cam, bbox, root, scale).numpy()
        u = uvd[:, 0] * 256.0 + 200.0
        v = uvd[:, 1] * 300.0 + 120.0
        z = uvd[:, 2] * 5.0 + 42.4
        np.testing.assert_allclose(xyz, np.stack([(u - 320) / 600 * z, (v - 240) / 610 * z, z], 1), rtol=1e-5)

    def test_perm_reverse(self):
        perm = np.array([3, 5, 0, 4, 1, 2])
        rev = pipeline.perm_reverse(perm, 4)
        self.assertEqual(rev.tolist(), [2, 4, 5, 0])


def testdata():
    d = os.environ.get("HANDGRAPH_TESTDATA")
    return d if d and os.path.isfile(os.path.join(d, "stamp")) else None


@unittest.skipUnless(testdata(), "HANDGRAPH_TESTDATA not made")
class FixtureConsistency(unittest.TestCase):
    """The fixture's files agree with each other, so C++ tests may rely on them."""

    def test_state_dict_and_weight_files(self):
        d = testdata()
        for seed in (1, 2, 3):
            sd, _ = st_numpy.load(os.path.join(d, "seed%d" % seed, "state_dict.safetensors"))
            loaded = torch.load(os.path.join(d, "seed%d" % seed, "legacy", "net_mesh_pose.pth"))
            for k, v in loaded.items():
                if not k.endswith("num_batches_tracked"):
                    self.assertEqual(sd["net_mesh_pose." + k[len("module."):]].tobytes(), v.numpy().tobytes())
            for name in ("weights.safetensors", "weights_zip.safetensors"):
                path = os.path.join(d, "seed%d" % seed, name)
                if not os.path.isfile(path):
                    continue
                w, meta = st_numpy.load(path)
                self.assertEqual(meta["format"], "handgraph-weights")
                self.assertEqual(set(w) - {"template.vertices", "template.faces"}, set(sd))
                for k, v in sd.items():
                    self.assertEqual(w[k].tobytes(), v.tobytes(), k)

    def test_reference_outputs_reproduce(self):
        """Nets loaded from seed2's legacy checkpoints reproduce its ref files."""
        d = testdata()
        refs = sorted(f for f in os.listdir(os.path.join(d, "seed2")) if f.startswith("ref_"))
        if not refs:
            self.skipTest("no reference outputs (see %s/README)" % d)
        import cv2
        import hand_graph
        ref, meta = st_numpy.load(os.path.join(d, "seed2", refs[0]))
        if meta["template"] == "synthetic_template.obj":
            template = os.path.join(d, meta["template"])
        else:
            shared = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
            template = os.path.join(shared, meta["template"])
        graph = hand_graph.build_hand_graph(template)
        nets = handnet.build_nets(graph["laplacians"])
        for stem, net in zip(handnet.STEMS, nets):
            sd = torch.load(os.path.join(d, "seed2", "legacy", stem + ".pth"))
            net.load_state_dict({k[len("module."):]: v for k, v in sd.items()})
        crop = cv2.imread(os.path.join(d, meta["image"]), cv2.IMREAD_COLOR)
        out = pipeline.run(nets, graph, crop, ref["cam"], ref["bbox"], ref["root"], ref["scale"])
        out.update(pipeline.run_f64(pipeline.as_double(nets), graph, crop, ref["cam"], ref["bbox"], ref["root"], ref["scale"]))
        self.assertEqual(sorted(out), sorted(ref))
        for k in ref:
            self.assertEqual(out[k].shape, ref[k].shape, k)
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=k)
        self.assertEqual(out["uv"].tolist(), ref["uv"].tolist())
        # magnitudes: neither vanishing nor exploding
        for k in ("heatmaps_0", "heatmaps_1", "enc_0", "enc_1", "mesh_raw", "depths"):
            m = float(np.abs(ref[k]).mean())
            self.assertTrue(0.05 < m < 50, "%s: mean |x| = %g" % (k, m))
        self.assertTrue(np.isfinite(ref["mesh_xyz"]).all())
        self.assertEqual(ref["pose_xyz"][0].tolist(), ref["root"].tolist())


if __name__ == "__main__":
    import unittest_support
    unittest_support.main()
