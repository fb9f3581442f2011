"""Tests of tools/convert_palm.py (MediaPipe palm detector .tflite -> handgraph palm-detector
safetensors) and of the numpy reference tests/reference/palm_reference.py.

- both models convert; the file is the documented container (weights/PALM_FORMAT.md);
  every weight equals numpy's float16 -> float32 widening of the flatbuffer buffer it
  comes from; op counts as ../shared/data/mediapipe/README.md lists them (full) and as
  PALM_FORMAT.md lists them (lite); the anchors equal the reference's;
- the converted graph, run by the reference's kernels, gives exactly what the reference
  gives running the .tflite directly; op by op the reference equals PyTorch (float64);
  the reference's raw outputs and detections on real crops are those recorded below;
- refusals (truncated, flipped header/vtable/offset bytes, unknown or custom op, vector
  beyond the file, wrong buffer size, hand-network weight file, non-TFLite files,
  unwritable output): one `error:` line, exit 1, no output file, no hang, no traceback;
- a short run of tests/fuzz/tflite_mutation.py.

Needs numpy (exit 77 without) and the models in $HANDGRAPH_SHARED_DATA/../mediapipe
(exit 77 without); the cross-check against PyTorch is skipped without torch.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_palm.py")
MUTATION = os.path.join(SOURCE_DIR, "tests", "fuzz", "tflite_mutation.py")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "reference"))

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print("SKIPPED: %s" % e)
    sys.exit(77)

SHARED = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
MEDIAPIPE = os.path.join(SHARED, "..", "mediapipe")
MODELS = {m: os.path.join(MEDIAPIPE, "palm_detection_%s.tflite" % m) for m in ("full", "lite")}
CROPS = os.path.join(SHARED, "real_world_testset", "images")
if not all(os.path.isfile(p) for p in MODELS.values()):
    print("SKIPPED: the palm detectors are not in %s (HANDGRAPH_SHARED_DATA/../mediapipe)" % MEDIAPIPE)
    sys.exit(77)

import convert_palm  # noqa: E402
import palm_reference as ref  # noqa: E402
import st_numpy  # noqa: E402

# ../shared/data/mediapipe/README.md: the full model's compute ops; the lite model's as
# found by the converter (weights/PALM_FORMAT.md).
OP_COUNTS = {
    "full": dict(CONV_2D=35, DEPTHWISE_CONV_2D=28, PRELU=31, ADD=30, MAX_POOL_2D=4, PAD=3,
                 RESIZE_BILINEAR=2, RESHAPE=4, CONCATENATION=2),
    "lite": dict(CONV_2D=30, DEPTHWISE_CONV_2D=23, PRELU=26, ADD=25, MAX_POOL_2D=4, PAD=3,
                 RESIZE_BILINEAR=2, RESHAPE=4, CONCATENATION=2),
}
SHA256 = {"full": "2f25e740121983f68ffc05f99991d524dc0ea812134f6316a26125816941ee85",
          "lite": "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18"}

# The reference (float64, letterbox "resize") on three real-world crops, recorded when it
# was validated on the 583 crops (weights/PALM_FORMAT.md, "Validation"): per model and
# crop, the number of palms, the best palm's anchor, score, image-relative box (xmin, ymin,
# w, h) and hand-region box (x, y, side in crop pixels), and two sums of the raw outputs.
# 00284 is one of the crops the full model misses.
EXPECTED = {
    "full": {
        "00000.jpg": dict(hands=1, regressors_sum=167432.35177483523, logits_abs_sum=20990.703926115184, anchor=1760,
                          score=0.9918861905654381, box=[0.3025462690818225, 0.508414948723399, 0.4130605327381294, 0.41299020356008986],
                          region_box=[-6.3534277315707754, -7.306422174419964, 274.933090590499]),
        "00284.jpg": dict(hands=0, regressors_sum=157539.98907083416, logits_abs_sum=20209.376799807083),
        "00300.jpg": dict(hands=1, regressors_sum=166556.58837744268, logits_abs_sum=18960.351731683506, anchor=1761,
                          score=0.9527156921929031, box=[0.30856390183148014, 0.49577323721942185, 0.4047377954299232, 0.40467564854817645],
                          region_box=[-9.28687676495585, -7.497703839568217, 269.3934766381569]),
    },
    "lite": {
        "00000.jpg": dict(hands=1, regressors_sum=182117.98079113115, logits_abs_sum=18175.345525439, anchor=1766,
                          score=0.9910018981720653, box=[0.31567221681995244, 0.5212343653411455, 0.38756027200672233, 0.3876370403335795],
                          region_box=[4.289769914581655, 4.513787264729359, 258.0112140460305]),
        "00284.jpg": dict(hands=1, regressors_sum=197514.40850872578, logits_abs_sum=17456.547927021547, anchor=1682,
                          score=0.8143719294530455, box=[0.13907223055266948, 0.4586784543697343, 0.42913558233257987, 0.42919204901930996],
                          region_box=[1.681535995043049, 39.704948760811504, 285.67022782725275]),
        "00300.jpg": dict(hands=1, regressors_sum=185072.35132079816, logits_abs_sum=17993.581250126088, anchor=1766,
                          score=0.9889535453567725, box=[0.31373818077827215, 0.48516575241926935, 0.4040518582195453, 0.40411925788381925],
                          region_box=[-0.22221861787252806, -10.240233531009778, 268.98177804747013]),
    },
}

TIMEOUT = 120


def read(path):
    with open(path, "rb") as f:
        return f.read()


def run_converter(src, out, *extra):
    return subprocess.run([sys.executable, CONVERTER, src, "-o", out] + list(extra),
                          capture_output=True, text=True, timeout=TIMEOUT)


def parse_safetensors(blob):
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n])
    return n, header


class Converted(object):
    """Each model converted once for the whole test run."""
    _dir = None
    _files = {}

    @classmethod
    def path(cls, model):
        if model not in cls._files:
            if cls._dir is None:
                cls._dir = tempfile.mkdtemp(prefix="test_convert_palm.")
            out = os.path.join(cls._dir, "palm_detection_%s.safetensors" % model)
            p = run_converter(MODELS[model], out)
            if p.returncode != 0:
                raise AssertionError("conversion of %s failed: %s" % (model, p.stderr))
            cls._files[model] = (out, p.stdout)
        return cls._files[model][0]

    @classmethod
    def cleanup(cls):
        if cls._dir:
            shutil.rmtree(cls._dir, ignore_errors=True)


def tearDownModule():
    Converted.cleanup()


class Conversion(unittest.TestCase):
    def test_both_convert_to_the_documented_container(self):
        for model in ("full", "lite"):
            with self.subTest(model=model):
                blob = read(Converted.path(model))
                n, header = parse_safetensors(blob)
                self.assertEqual((8 + n) % 64, 0)
                meta = header.pop("__metadata__")
                self.assertTrue(all(isinstance(v, str) for v in meta.values()))
                self.assertEqual(meta["format"], "handgraph-palm-detector")
                self.assertEqual(meta["format_version"], "1")
                self.assertEqual(meta["model"], "palm_detection_%s" % model)
                self.assertEqual(meta["sha256.source"], SHA256[model])
                self.assertEqual(meta["source_file"], "palm_detection_%s.tflite" % model)
                self.assertEqual(meta["num_boxes"], "2016")
                self.assertEqual(meta["input_shape"], "1,192,192,3")
                names = list(header)
                self.assertEqual(names, sorted(names))
                offset = 0
                for name in names:
                    t = header[name]
                    self.assertEqual(t["dtype"], "F32", name)
                    self.assertEqual(t["data_offsets"][0], offset, name)
                    offset = t["data_offsets"][1]
                    self.assertEqual(offset - t["data_offsets"][0], 4 * int(np.prod(t["shape"])), name)
                self.assertEqual(8 + n + offset, len(blob))
                graph = json.loads(meta["graph"])
                counts = {}
                for op in graph["ops"]:
                    counts[op["op"]] = counts.get(op["op"], 0) + 1
                self.assertEqual(counts, OP_COUNTS[model])
                self.assertEqual(meta["num_ops"], str(sum(OP_COUNTS[model].values())))
                self.assertEqual(meta["op_counts"], ",".join("%s=%d" % kv for kv in sorted(OP_COUNTS[model].items())))
                # the ops the README describes: one 5x5 stride-2 stem, the other convs 1x1, 5x5 depthwise
                convs = [op for op in graph["ops"] if op["op"] == "CONV_2D"]
                self.assertEqual([op["kernel"] for op in convs].count([5, 5]), 1)
                self.assertEqual((convs[0]["kernel"], convs[0]["stride"], convs[0]["pad"]), ([5, 5], [2, 2], [1, 2, 1, 2]))
                self.assertTrue(all(op["kernel"] == [1, 1] for op in convs[1:]))
                self.assertTrue(all(op["kernel"] == [5, 5] for op in graph["ops"] if op["op"] == "DEPTHWISE_CONV_2D"))
                self.assertTrue(all(op["half_pixel_centers"] and not op["align_corners"]
                                    for op in graph["ops"] if op["op"] == "RESIZE_BILINEAR"))
                post = json.loads(meta["postprocess"])
                self.assertEqual(post["decode"]["min_score_thresh"], 0.5)
                self.assertEqual(post["nms"]["min_suppression_threshold"], 0.3)
                self.assertEqual((post["hand_region"]["scale_x"], post["hand_region"]["shift_y"]), (2.6, -0.5))

    def test_output_is_deterministic(self):
        out = os.path.join(Converted._dir or tempfile.gettempdir(), "again.safetensors")
        Converted.path("lite")
        try:
            p = run_converter(MODELS["lite"], out)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(read(out), read(Converted.path("lite")))
        finally:
            if os.path.exists(out):
                os.unlink(out)

    def test_weights_equal_the_float16_buffers_widened(self):
        """Each op's weight, traced back through the .tflite (op -> DEQUANTIZE -> float16
        buffer) with numpy, equals the file's tensor bit for bit; nothing else is in the file."""
        for model in ("full", "lite"):
            with self.subTest(model=model):
                raw = read(MODELS[model])
                tfl = convert_palm.TFLiteModel(raw)
                producer = {op.outputs[0]: op for op in tfl.ops}
                tensors, meta = st_numpy.load(Converted.path(model))
                graph = json.loads(meta["graph"])
                seen = {"anchors"}
                for op in graph["ops"]:
                    src = tfl.ops[op["tflite_op"]]
                    self.assertEqual(src.name, op["op"])
                    roles = {"CONV_2D": (("filter", 1), ("bias", 2)), "DEPTHWISE_CONV_2D": (("filter", 1), ("bias", 2)),
                             "PRELU": (("alpha", 1),)}.get(op["op"], ())
                    for role, slot in roles:
                        if op[role] is None:
                            continue
                        deq = producer[src.inputs[slot]]
                        self.assertEqual(deq.name, "DEQUANTIZE")
                        t16 = tfl.tensors[deq.inputs[0]]
                        self.assertEqual(t16.type, 1)  # FLOAT16
                        buf = tfl.buffers[t16.buffer]
                        # the buffer's vector: its uint32 length right before the data
                        self.assertEqual(struct.unpack_from("<I", raw, buf.offset - 4)[0], buf.size)
                        want = np.frombuffer(raw[buf.offset:buf.offset + buf.size], "<f2").astype("<f4")
                        got = tensors[op[role]]
                        self.assertEqual(got.size, want.size, op[role])
                        self.assertEqual(got.reshape(-1).tobytes(), want.tobytes(), op[role])
                        if role == "alpha":
                            self.assertEqual(got.shape, (t16.shape[-1],))
                        else:
                            self.assertEqual(got.shape, t16.shape)
                        seen.add(op[role])
                self.assertEqual(seen, set(tensors))

    def test_anchors_equal_the_reference(self):
        tensors, _ = st_numpy.load(Converted.path("full"))
        a = ref.ssd_anchors()
        self.assertEqual(a.shape, (2016, 4))
        np.testing.assert_array_equal(tensors["anchors"], a.astype(np.float32))
        # README: rows 0-1151 the 24x24 grid, 2 per cell; rows 1152-2015 the 12x12 grid, 6 per cell
        np.testing.assert_allclose(a[0], [0.5 / 24, 0.5 / 24, 1, 1])
        np.testing.assert_allclose(a[1151], [23.5 / 24, 23.5 / 24, 1, 1])
        np.testing.assert_allclose(a[1152], [0.5 / 12, 0.5 / 12, 1, 1])
        np.testing.assert_allclose(a[1157], [0.5 / 12, 0.5 / 12, 1, 1])
        np.testing.assert_allclose(a[1158], [1.5 / 12, 0.5 / 12, 1, 1])


class Reference(unittest.TestCase):
    crops = ("00000.jpg", "00284.jpg", "00300.jpg")

    def crop(self, name):
        path = os.path.join(CROPS, name)
        if not os.path.isfile(path):
            self.skipTest("real-world crops not in %s" % CROPS)
        return ref.read_rgb(path)

    def test_converted_graph_runs_as_the_tflite(self):
        for model in ("full", "lite"):
            g = ref.TFLiteGraph(MODELS[model])
            loaded = ref.load_converted(Converted.path(model))
            tensor, _ = ref.letterbox(self.crop(self.crops[1]))
            r1, l1 = g.run(tensor)
            r2, l2 = ref.run_converted(loaded, tensor)
            np.testing.assert_array_equal(r1, r2)
            np.testing.assert_array_equal(l1, l2)

    def test_ops_equal_pytorch(self):
        try:
            import torch  # noqa: F401
        except ImportError:
            self.skipTest("torch not installed")
        tensor, _ = ref.letterbox(self.crop(self.crops[0]))
        for model in ("full", "lite"):
            kinds = set()
            for k, kind, diff, scale in ref.crosscheck(ref.TFLiteGraph(MODELS[model]), tensor):
                tol = 1e-6 if "cv2" in kind else 1e-12   # cv2.resize works in float32
                self.assertLessEqual(diff, tol * max(scale, 1.0), "op %d %s" % (k, kind))
                kinds.add(kind)
            self.assertEqual(kinds, {"CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "ADD", "MAX_POOL_2D", "PAD",
                                     "RESIZE_BILINEAR", "RESIZE_BILINEAR (cv2)", "RESHAPE", "CONCATENATION"})

    def test_float32_within_the_parity_tolerance(self):
        tensor, _ = ref.letterbox(self.crop(self.crops[2]))
        for model in ("full", "lite"):
            r64, l64 = ref.TFLiteGraph(MODELS[model]).run(tensor)
            r32, l32 = ref.TFLiteGraph(MODELS[model], np.float32).run(tensor)
            self.assertLess(np.abs(r32 - r64).max(), 1e-5 * np.abs(r64).max() + 1e-4)
            self.assertLess(np.abs(l32 - l64).max(), 1e-5 * np.abs(l64).max() + 1e-4)

    def test_outputs_on_real_crops_are_stable(self):
        if not EXPECTED:
            self.skipTest("no recorded values")
        for model in ("full", "lite"):
            g = ref.TFLiteGraph(MODELS[model])
            for name in self.crops:
                with self.subTest(model=model, crop=name):
                    want = EXPECTED[model][name]
                    r = ref.detect(g, self.crop(name))
                    self.assertEqual(len(r["hands"]), want["hands"])
                    self.assertAlmostEqual(float(r["regressors"].sum()), want["regressors_sum"], delta=1e-6 * abs(want["regressors_sum"]) + 1e-6)
                    self.assertAlmostEqual(float(np.abs(r["logits"]).sum()), want["logits_abs_sum"], delta=1e-6 * want["logits_abs_sum"])
                    if want["hands"]:
                        best = r["hands"][0]
                        self.assertEqual(best["anchor"], want["anchor"])
                        self.assertAlmostEqual(best["score"], want["score"], delta=1e-9)
                        np.testing.assert_allclose(best["box"], want["box"], atol=1e-7)
                        np.testing.assert_allclose(best["region"]["box"], want["region_box"], atol=1e-4)

    def test_dump_for_parity_tests(self):
        d = tempfile.mkdtemp(prefix="palm_dump.")
        try:
            st, js = os.path.join(d, "ref.safetensors"), os.path.join(d, "ref.json")
            path = os.path.join(CROPS, self.crops[0])
            self.crop(self.crops[0])
            p = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "tests", "reference", "palm_reference.py"),
                                MODELS["lite"], path, "--dump", st, "--json", js], capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stderr)
            arrays, meta = st_numpy.load(st)
            self.assertEqual(meta["format"], "handgraph-palm-reference")
            self.assertEqual(arrays["image0.regressors"].shape, (2016, 18))
            self.assertEqual(arrays["image0.logits"].shape, (2016,))
            self.assertEqual(arrays["image0.input"].shape, (1, 192, 192, 3))
            self.assertEqual(arrays["anchors"].shape, (2016, 4))
            with open(js) as f:
                j = json.load(f)
            self.assertEqual(len(j["images"][0]["hands"]), arrays["image0.hands"].shape[0])
            self.assertEqual(arrays["image0.hands"].shape[1], 19)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class PostProcessing(unittest.TestCase):
    """The reference's MediaPipe rules on hand-made cases."""

    def det(self, score, box, kp=None, anchor=0):
        kp = np.zeros((7, 2)) if kp is None else np.asarray(kp, np.float64)
        return dict(anchor=anchor, score=score, box=np.asarray(box, np.float64), keypoints=kp)

    def test_sigmoid_clipping(self):
        s = ref.sigmoid_scores([0.0, 1e4, -1e4, 100.0, -100.0])
        self.assertEqual(s[0], 0.5)
        self.assertEqual(s[1], s[3])
        self.assertEqual(s[2], s[4])
        self.assertGreater(s[2], 0.0)

    def test_decoding(self):
        anchors = ref.ssd_anchors()
        reg = np.zeros((2016, 18))
        reg[5, :4] = [19.2, -9.6, 96.0, 48.0]       # centre +0.1, -0.05 of the input; size 0.5 x 0.25
        reg[5, 4:6] = [-19.2, 0.0]
        boxes, kps = ref.decode_boxes(reg, anchors)
        ax, ay = anchors[5, :2]
        np.testing.assert_allclose(boxes[5], [ax + 0.1 - 0.25, ay - 0.05 - 0.125, 0.5, 0.25])
        np.testing.assert_allclose(kps[5, 0], [ax - 0.1, ay])
        np.testing.assert_allclose(kps[5, 1], [ax, ay])
        logits = np.full(2016, -10.0)
        logits[5] = 0.0      # score exactly 0.5: kept (>= 0.5)
        logits[6] = 3.0
        reg[6, 2] = -1.0     # negative width: dropped
        d = ref.detections(reg, logits, anchors)
        self.assertEqual([x["anchor"] for x in d], [5])

    def test_weighted_nms(self):
        a = self.det(0.9, [0.1, 0.1, 0.2, 0.2], np.full((7, 2), 0.2), anchor=3)
        b = self.det(0.6, [0.12, 0.1, 0.2, 0.2], np.full((7, 2), 0.3), anchor=1)   # IoU 0.82 with a
        c = self.det(0.8, [0.6, 0.6, 0.2, 0.2], anchor=2)                          # apart
        d = self.det(0.7, [0.1 + 0.2 * 0.6, 0.1, 0.2, 0.2], anchor=4)             # IoU 0.25 with a: kept
        out = ref.weighted_nms([a, b, c, d])
        self.assertEqual([o["anchor"] for o in out], [3, 2, 4])
        self.assertEqual(out[0]["score"], 0.9)
        np.testing.assert_allclose(out[0]["box"][0], (0.1 * 0.9 + 0.12 * 0.6) / 1.5)
        np.testing.assert_allclose(out[0]["box"][2], 0.2)
        np.testing.assert_allclose(out[0]["keypoints"], np.full((7, 2), (0.2 * 0.9 + 0.3 * 0.6) / 1.5))
        np.testing.assert_allclose(out[1]["box"], c["box"])
        self.assertAlmostEqual(ref.iou(a["box"], d["box"]), 0.25)

    def test_hand_region(self):
        # wrist straight below the middle MCP: no rotation; the region moves up (towards the
        # fingers) by half the box height, square on the long side, 2.6 times it
        kp = np.zeros((7, 2))
        kp[0] = [0.5, 0.6]
        kp[2] = [0.5, 0.4]
        r = ref.hand_region(self.det(0.9, [0.4, 0.4, 0.2, 0.1], kp), 200, 100)
        self.assertEqual(r["rotation"], 0.0)
        np.testing.assert_allclose(r["center"], [100.0, 45 - 5.0])
        self.assertAlmostEqual(r["side"], 2.6 * 40)
        np.testing.assert_allclose(r["box"], [100 - 52, 40 - 52, 104])
        # the hand pointing right (middle MCP right of the wrist): rotation +90 deg (clockwise in
        # image coordinates, y down), the shift goes right
        kp[0] = [0.4, 0.5]
        kp[2] = [0.6, 0.5]
        r = ref.hand_region(self.det(0.9, [0.4, 0.4, 0.2, 0.2], kp), 100, 100)
        self.assertAlmostEqual(r["rotation"], math.pi / 2)
        np.testing.assert_allclose(r["center"], [50 + 10, 50], atol=1e-9)
        self.assertAlmostEqual(r["box_enclosing"][2], r["side"])

    def test_letterbox_and_its_removal(self):
        import cv2
        rgb = np.random.RandomState(1).randint(0, 256, (256, 256, 3)).astype(np.uint8)
        t, pad = ref.letterbox(rgb)
        self.assertEqual(pad, (0.0, 0.0, 0.0, 0.0))
        np.testing.assert_array_equal(t[0], cv2.resize(rgb, (192, 192), interpolation=cv2.INTER_LINEAR) * np.float32(1 / 255.0))
        wide = np.full((480, 640, 3), 200, np.uint8)
        t, pad = ref.letterbox(wide)
        self.assertEqual(pad, (0.0, 0.125, 0.0, 0.125))
        self.assertEqual(t[0, :24].max(), 0.0)
        self.assertEqual(t[0, 168:].max(), 0.0)
        self.assertAlmostEqual(float(t[0, 24:168].min()), 200 / 255.0, places=6)
        d = ref.remove_letterbox(self.det(0.9, [0.25, 0.125, 0.5, 0.75], np.full((7, 2), 0.5)), pad)
        np.testing.assert_allclose(d["box"], [0.25, 0.0, 0.5, 1.0])
        np.testing.assert_allclose(d["keypoints"], np.full((7, 2), 0.5))

    def test_a_crop_pasted_into_a_frame_is_found_where_it_is(self):
        import cv2
        path = os.path.join(CROPS, "00000.jpg")
        if not os.path.isfile(path):
            self.skipTest("real-world crops not in %s" % CROPS)
        crop = ref.read_rgb(path)
        g = ref.TFLiteGraph(MODELS["full"], np.float32)
        alone = ref.detect(g, crop)["hands"][0]["region"]
        frame = np.full((480, 640, 3), 90, np.uint8)
        x0, y0, size = 400, 150, 240
        frame[y0:y0 + size, x0:x0 + size] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        hands = ref.detect(g, frame)["hands"]
        self.assertGreaterEqual(len(hands), 1)
        r = hands[0]["region"]
        k = size / 256.0
        np.testing.assert_allclose(r["center"], [x0 + alone["center"][0] * k, y0 + alone["center"][1] * k], atol=0.05 * size)
        self.assertAlmostEqual(r["side"], alone["side"] * k, delta=0.1 * size)


# ---------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------

class Refusals(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_convert_palm_refusals.")
        cls.raw = read(MODELS["lite"])
        cls.model = convert_palm.TFLiteModel(cls.raw)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def refused(self, data, *expect, name="bad.tflite"):
        """Convert `data` (bytes); assert one clean error line containing each of `expect`."""
        src = os.path.join(self.tmp, name)
        with open(src, "wb") as f:
            f.write(data)
        out_dir = os.path.join(self.tmp, "out")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.mkdir(out_dir)
        out = os.path.join(out_dir, "palm.safetensors")
        p = run_converter(src, out)
        self.assertEqual(p.returncode, 1, p.stderr + p.stdout)
        self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
        self.assertTrue(p.stderr.startswith("error: %s: " % name), p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertNotIn("internal error", p.stderr)
        self.assertTrue(p.stderr[:-1].isprintable(), p.stderr)
        self.assertEqual(os.listdir(out_dir), [])
        for e in expect:
            self.assertIn(e, p.stderr)
        return p.stderr

    def patched(self, pos, fmt, value):
        b = bytearray(self.raw)
        struct.pack_into("<" + fmt, b, pos, value)
        return bytes(b)

    # where things are, found with the converter's own reader on the good file
    def root_table(self):
        return convert_palm.Flat(self.raw).root("Model")

    def field_pos(self, table, index):
        return table.pos + struct.unpack_from("<H", self.raw, table.vt + 4 + 2 * index)[0]

    def test_truncated(self):
        for cut in (0, 3, 7, 8, 64, 1000, len(self.raw) // 2, len(self.raw) - 100, len(self.raw) - 1):
            with self.subTest(cut=cut):
                self.refused(self.raw[:cut])

    def test_header_bytes(self):
        self.refused(self.patched(0, "I", 0xFFFFFFF0), "Model table", "outside the file")
        self.refused(self.patched(0, "I", 2), "not aligned")
        self.refused(self.patched(4, "4s", b"TFL2"), "not a TFLite model")
        m = self.root_table()
        self.refused(self.patched(self.field_pos(m, 0), "I", 2), "schema version 2")

    def test_vtables(self):
        m = self.root_table()
        self.refused(self.patched(m.vt, "H", 3), "vtable", "bad size 3")
        self.refused(self.patched(m.pos, "i", -(1 << 30)), "vtable", "outside the file")
        self.refused(self.patched(m.vt + 2, "H", 2), "bad size 2")
        # a field offset beyond its table
        self.refused(self.patched(m.vt + 4 + 2 * 2, "H", 0xFFF0), "runs past its table")
        # an operator's vtable pointer
        sg = m.tables(2, "subgraphs", 1)[0]
        op = sg.tables(3, "operators", 100000)[5]
        self.refused(self.patched(op.pos, "i", op.pos + 10), "operators[5] vtable", "outside the file")

    def test_offsets(self):
        m = self.root_table()
        p = self.field_pos(m, 2)  # subgraphs uoffset
        self.refused(self.patched(p, "I", len(self.raw)), "outside the file")
        self.refused(self.patched(p, "I", 0x7FFFFFFF), "outside the file")
        sg = m.tables(2, "subgraphs", 1)[0]
        t = sg.tables(0, "tensors", 100000)[10]
        self.refused(self.patched(self.field_pos(t, 2), "I", 100000), "tensor 10", "buffer 100000")
        op = sg.tables(3, "operators", 100000)[7]
        self.refused(self.patched(self.field_pos(op, 0), "I", 5000), "operator 7", "opcode index 5000")
        ins = op._target(1, "inputs")
        self.refused(self.patched(ins + 4, "i", 99999), "operator 7", "tensor index 99999")

    def test_vector_length_beyond_the_file(self):
        m = self.root_table()
        sg = m.tables(2, "subgraphs", 1)[0]
        vec = sg._target(0, "tensors")
        self.refused(self.patched(vec, "I", 0x10000000), "tensors", "runs past the end of the file")
        b = m.tables(4, "buffers", 100000)[12]
        data = b._target(0, "data")
        self.refused(self.patched(data, "I", len(self.raw)), "buffers[12].data", "runs past the end of the file")
        t = sg.tables(0, "tensors", 100000)[0]
        self.refused(self.patched(t._target(3, "name"), "I", 0x7FFFFFF0), "name", "runs past the end of the file")

    def test_wrong_shape_or_buffer_size(self):
        m = self.root_table()
        sg = m.tables(2, "subgraphs", 1)[0]
        tensors = sg.tables(0, "tensors", 100000)
        i = [k for k, t in enumerate(self.model.tensors) if t.shape == (32, 5, 5, 3)][0]   # the stem's filter
        shape = tensors[i]._target(0, "shape")
        self.refused(self.patched(shape + 4 + 12, "i", 4), "tensor %d" % i, "holds 4800 bytes, the shape needs 6400")
        self.refused(self.patched(shape + 4, "i", 0), "every dimension must be at least 1")
        # an activation of the wrong shape: the stem's output claimed 95 wide
        out = self.model.ops[2].outputs[0]
        shape = tensors[out]._target(0, "shape")
        self.refused(self.patched(shape + 4 + 8, "i", 95), "operator 2 (CONV_2D)", "the op makes [1, 96, 96, 32]")

    def test_unknown_and_custom_ops(self):
        m = self.root_table()
        codes = m.tables(1, "operator_codes", 1000)
        k = [i for i, (c, _) in enumerate(self.model.codes) if c == 54][0]   # PRELU
        oc = codes[k]
        data = bytearray(self.raw)
        struct.pack_into("<b", data, self.field_pos(oc, 0), 25)
        struct.pack_into("<i", data, self.field_pos(oc, 3), 25)
        self.refused(bytes(data), "is SOFTMAX, which this converter does not know")
        struct.pack_into("<b", data, self.field_pos(oc, 0), 127)
        struct.pack_into("<i", data, self.field_pos(oc, 3), 200)
        self.refused(bytes(data), "builtin operator code 200")
        struct.pack_into("<b", data, self.field_pos(oc, 0), 32)
        struct.pack_into("<i", data, self.field_pos(oc, 3), 32)
        self.refused(bytes(data), "custom op")

    def test_options_of_the_wrong_type(self):
        m = self.root_table()
        sg = m.tables(2, "subgraphs", 1)[0]
        op = sg.tables(3, "operators", 100000)[2]   # the stem CONV_2D: Conv2DOptions -> Pool2DOptions
        self.refused(self.patched(self.field_pos(op, 3), "B", 5), "operator 2 (CONV_2D)", "Pool2DOptions")

    def test_other_files(self):
        self.refused(b"", "not a TFLite model")
        self.refused(b"hello, world\n" * 10, "not a TFLite model")
        self.refused(os.urandom(4096)[:4] + b"XXXX" + os.urandom(100), "not a TFLite model")
        jpg = os.path.join(CROPS, "00000.jpg")
        if os.path.isfile(jpg):
            self.refused(read(jpg), "not a TFLite model", name="crop.jpg")
        hand = os.path.join(self.tmp, "hand.safetensors")
        st_numpy.save(hand, {"net_hm.conv1_.weight": np.zeros((2, 3), np.float32)},
                      {"format": "handgraph-weights", "format_version": "1"})
        self.refused(read(hand), "hand-network weight file", name="hand.safetensors")
        self.refused(read(Converted.path("lite")), "already a converted palm-detector file", name="palm.safetensors")

    def test_missing_input_and_unwritable_output(self):
        p = run_converter(os.path.join(self.tmp, "nope.tflite"), os.path.join(self.tmp, "x.safetensors"))
        self.assertEqual((p.returncode, p.stderr.count("\n")), (1, 1), p.stderr)
        self.assertIn("no such file", p.stderr)
        p = run_converter(MODELS["lite"], os.path.join(self.tmp, "no", "such", "dir", "x.safetensors"))
        self.assertEqual((p.returncode, p.stderr.count("\n")), (1, 1), p.stderr)
        self.assertIn("does not exist", p.stderr)
        # a refused conversion leaves an existing output as it was
        out = os.path.join(self.tmp, "keep.safetensors")
        with open(out, "wb") as f:
            f.write(b"old")
        bad = os.path.join(self.tmp, "trunc.tflite")
        with open(bad, "wb") as f:
            f.write(self.raw[:5000])
        p = run_converter(bad, out)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(read(out), b"old")
        self.assertEqual(sorted(os.listdir(self.tmp)).count("keep.safetensors"), 1)
        self.assertFalse([n for n in os.listdir(self.tmp) if n.endswith(".tmp")])

    def test_mutation_short(self):
        p = subprocess.run([sys.executable, MUTATION, "--models", MEDIAPIPE, "--seconds", "20", "--seed", "12",
                            "--cli-every", "20"], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        self.assertIn("findings 0", p.stdout)


if __name__ == "__main__":
    import unittest_support
    unittest_support.main()
