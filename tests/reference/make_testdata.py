#!/usr/bin/env python3
"""CTest fixture: random-weight checkpoints, converted weight files and PyTorch reference
outputs for the C++ tests.

    make_testdata.py --out DIR        (HANDGRAPH_SHARED_DATA: the release's data folder)

Layout (all safetensors written with st_numpy.save; DIR/README lists what was made and
what was skipped, e.g. when the release data is absent):

    images/<stem>.png                  256x256 BGR test crops (cv2.imwrite): real_<nnnnn>
                                       from real_world_testset (when present), synthetic_<i>
    seed<k>/legacy/<net>.pth           release style: legacy pickle, `module.` keys,
                                       num_batches_tracked included (k = 1, 2, 3)
    seed<k>/zip/<net>.pth              PyTorch >= 1.6 zip, plain keys
    seed<k>/weights.safetensors        tools/convert_weights.py of legacy/ with the template
    seed<k>/weights_zip.safetensors    tools/convert_weights.py of zip/ with the template
    synthetic_template.obj             only when the release's template is absent: the
                                       generated stand-in (synthetic_template.py) used for
                                       the weight files, the hand graph and ref_* instead
    seed<k>/state_dict.safetensors     torch.load of legacy/: every float32 tensor as
                                       `<net>.<key>` (no `module.`, no num_batches_tracked)
    seed<k>/ref_<image stem>.safetensors  tests/reference/pipeline.py outputs (metadata
                                       `template` names the OBJ used): heatmaps_0/1 (21,64,64), enc_0/1
                                       (256,64,64), features (4096), mesh_raw (1280,3),
                                       depths (20), uv (21,2) I32, uv_margin (21)
                                       (relative gap best - runner-up in the upsampled
                                       heat-map: 0 = exact tie), pose_xyz (21,3),
                                       mesh_xyz (954,3), cam (4), bbox (4), root (3),
                                       scale (1), and the float64 evaluation's
                                       <key>_f64 (pipeline.run_f64); seed 1 on every image,
                                       seeds 2, 3 on two (images_for_seed).
                                       cam/bbox/root/scale: params.mat's row for real_00000
                                       and real_00150 (square boxes, the release's protocol);
                                       made-up sets (PARAM_SETS: w != h, box leaving the
                                       frame, fx != fy) for the other crops, so that a swap
                                       of w/h, x/y, fx/fy or u0/v0 in uvd-to-xyz is caught;
                                       README lists what each swap would change.

Idempotent: everything is built in a sibling temporary folder and swapped in at the
end; a stamp of the inputs (sources, release data, torch version) lets a rerun with
unchanged inputs return at once.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import handnet  # noqa: E402
import st_numpy  # noqa: E402

CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_weights.py")
TEMPLATE_NAME = "0214_lowP_vn_g.0001.obj"
SYNTHETIC_TEMPLATE = "synthetic_template.obj"  # written to DIR when the release's is absent
SEEDS = (1, 2, 3)
ZIP_SEEDS = (1,)  # the zip serialisation is exercised on one seed (it costs a save and a conversion)
REAL_INDICES = (0, 150, 300, 450)  # rows of real_world_testset/params.mat
NUM_SYNTHETIC = 2

# Crop parameters of each test crop (what uvd-to-xyz needs, spec section 4): cam [fx, fy,
# u0, v0], bbox [x, y, w, h] of the crop in the original frame, root (cm), scale (cm).
# Every real-world and STB box is square and the real-world camera has fx ~ fy, so with
# only those a swap of w/h (or nearly of fx/fy) in uvd-to-xyz would go unseen. The first
# two real crops keep their own params.mat row (the release's protocol); the other crops
# get one of these made-up sets, each with w != h, a box leaving its frame and a camera
# with fx != fy and u0 != v0, so that a swap of w/h, x/y, fx/fy or u0/v0 moves pose_xyz
# and mesh_xyz far beyond test_pipeline's tolerance (build() measures it, checks it
# against SWAP_MIN_CHANGE and writes the figures to README). Values are exact in float32,
# so the float32 and float64 references and the C++ code see the same parameters.
# `frame` (width, height) is the original image the box refers to; only the README uses it.
PARAM_SETS = {
    "tall_left_top": dict(frame=(640, 480), cam=[612.5, 588.25, 331.75, 228.5],
                          bbox=[-37.0, -52.0, 240.0, 300.0], root=[-3.25, 11.0, 42.375], scale=[5.0]),
    "wide_right_bottom": dict(frame=(640, 480), cam=[598.0, 621.5, 305.25, 251.75],
                              bbox=[455.0, 330.0, 310.0, 200.0], root=[2.5, 7.75, 45.5], scale=[4.75]),
    "tall_right_top": dict(frame=(1280, 720), cam=[931.25, 902.5, 655.5, 350.25],
                           bbox=[1104.0, -61.0, 250.0, 330.0], root=[2.5, 7.25, 44.375], scale=[5.0]),
    "wide_left_bottom": dict(frame=(1280, 720), cam=[902.5, 931.25, 620.75, 371.5],
                             bbox=[-85.0, 512.0, 330.0, 245.0], root=[4.75, 7.25, 41.125], scale=[5.0]),
}
REAL_PARAMS = (None, None, "tall_right_top", "wide_left_bottom")  # per REAL_INDICES; None: params.mat's row
SYNTHETIC_PARAMS = ("tall_left_top", "wide_right_bottom")  # per synthetic crop
PARAM_KEYS = ("cam", "bbox", "root", "scale")  # the arguments of pipeline.run
SWAPS = (("w/h", "bbox", 2, 3), ("x/y", "bbox", 0, 1), ("fx/fy", "cam", 0, 1), ("u0/v0", "cam", 2, 3))
# A swap must move pose_xyz and mesh_xyz (max |change| / max |value|) by at least this on
# the made-up sets: 100x test_pipeline's bound (1e-5 relative to the float64 evaluation).
SWAP_MIN_CHANGE = 1e-3
SOURCES = ("make_testdata.py", "handnet.py", "pipeline.py", "hand_graph.py", "st_numpy.py",
           "synthetic_template.py", "numpy_argsort.py")


def log(msg):
    print("make_testdata: " + msg, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shared_data_dir():
    d = os.environ.get("HANDGRAPH_SHARED_DATA")
    if not d:
        d = os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
    return os.path.abspath(d)


def synthetic_crop(i):
    """Deterministic 256x256 BGR: smooth coloured blobs on a gradient, plus noise."""
    rng = np.random.RandomState(1000 + i)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float64)
    img = np.empty((256, 256, 3))
    for c in range(3):
        img[:, :, c] = 60 + 40 * (xx / 255.0) * rng.uniform(-1, 1) + 40 * (yy / 255.0) * rng.uniform(-1, 1)
    for _ in range(12):
        cx, cy = rng.uniform(20, 236, size=2)
        sx, sy = rng.uniform(8, 50, size=2)
        colour = rng.uniform(-120, 160, size=3)
        blob = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        img += blob[:, :, None] * colour[None, None, :]
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


class Inputs(object):
    """What the release data folder offers, and the notes about what it lacks."""

    def __init__(self):
        import cv2
        self.cv2 = cv2
        self.shared = shared_data_dir()
        self.notes = []
        self.scratch = tempfile.mkdtemp(prefix="make_testdata.")
        self.template = os.path.join(self.shared, TEMPLATE_NAME)
        self.synthetic_template = False
        if not os.path.isfile(self.template):
            self.template = None
            try:
                import synthetic_template
                self.template = os.path.join(self.scratch, SYNTHETIC_TEMPLATE)
                synthetic_template.write_obj(self.template)
                self.synthetic_template = True
                self.notes.append("release template %s absent: used the generated stand-in "
                                  "(tests/reference/synthetic_template.py), written to %s"
                                  % (os.path.join(self.shared, TEMPLATE_NAME), SYNTHETIC_TEMPLATE))
            except Exception as e:
                self.template = None
                self.notes.append("template %s absent and no synthetic stand-in (%s: %s): skipped "
                                  "weights*.safetensors and ref_*.safetensors"
                                  % (os.path.join(self.shared, TEMPLATE_NAME), type(e).__name__, e))
        self.graph = None
        if self.template:
            try:
                import hand_graph
                self.graph = hand_graph.build_hand_graph(self.template)
            except Exception as e:  # the graph code is another engineer's, may be in flux
                self.notes.append("hand graph unavailable (%s: %s): skipped ref_*.safetensors" % (type(e).__name__, e))
        self.images = []  # (stem, crop, params dict, source description)
        self.param_sets = {}  # stem -> name in PARAM_SETS, or None (params.mat's own row)
        self._real_images()
        for i in range(NUM_SYNTHETIC):
            stem = "synthetic_%d" % i
            self.images.append((stem, synthetic_crop(i), param_set(SYNTHETIC_PARAMS[i]),
                                "generated (make_testdata.synthetic_crop(%d))" % i))
            self.param_sets[stem] = SYNTHETIC_PARAMS[i]

    def _real_images(self):
        testset = os.path.join(self.shared, "real_world_testset")
        params_path = os.path.join(testset, "params.mat")
        if not os.path.isfile(params_path):
            self.notes.append("real-world test set absent (%s): synthetic images only" % testset)
            return
        import scipy.io
        p = scipy.io.loadmat(params_path)
        for row, made_up in zip(REAL_INDICES, REAL_PARAMS):
            rel = str(p["image_path"][row]).strip()
            path = os.path.join(testset, rel)
            crop = self.cv2.imread(path, self.cv2.IMREAD_COLOR)
            if crop is None or crop.shape != (256, 256, 3):
                self.notes.append("%s unreadable or not 256x256: skipped" % path)
                continue
            stem = "real_" + os.path.splitext(os.path.basename(rel))[0]
            source = "real_world_testset/%s" % rel
            if made_up is None:
                params = dict(cam=p["cam_param"][row], bbox=p["bbox"][row], root=p["pose_root"][row],
                              scale=[p["pose_scale"].reshape(-1)[row]])
                source += ", params.mat row %d" % row
            else:
                params = param_set(made_up)
            self.images.append((stem, crop, params, source))
            self.param_sets[stem] = made_up

    def stamp(self):
        h = hashlib.sha256()
        for name in SOURCES:
            path = os.path.join(HERE, name)
            h.update(name.encode() + b"\0" + (sha256_file(path) if os.path.isfile(path) else "absent").encode())
        h.update(sha256_file(CONVERTER).encode())
        h.update(("template:%s:%s" % (self.synthetic_template, sha256_file(self.template) if self.template else "absent")).encode())
        h.update(("graph:" + ("ok" if self.graph is not None else "absent")).encode())
        for stem, crop, params, _ in self.images:
            h.update(stem.encode() + hashlib.sha256(crop.tobytes()).digest())
            h.update(json.dumps({k: [float(v) for v in np.ravel(a)] for k, a in params.items()}, sort_keys=True).encode())
        h.update(torch.__version__.encode() + np.__version__.encode())
        return h.hexdigest()


def param_set(name):
    """The pipeline.run arguments of PARAM_SETS[name] (copies)."""
    return {k: list(PARAM_SETS[name][k]) for k in PARAM_KEYS}


def describe_params(name):
    """README text: the set's name, its box's shape and the sides where it leaves its frame."""
    ps = PARAM_SETS[name]
    (fw, fh), (x, y, w, h) = ps["frame"], ps["bbox"]
    sides = [s for s, out in (("left", x < 0), ("top", y < 0), ("right", x + w > fw), ("bottom", y + h > fh)) if out]
    return "made-up params %r: box %gx%g, leaves the %dx%d frame at the %s" % (
        name, w, h, fw, fh, " and ".join(sides) if sides else "(nowhere)")


def swap_changes(ref, graph, params):
    """How far a swap of two crop parameters in uvd-to-xyz (spec section 4) would move the
    outputs: {swap: (pose_xyz change, mesh_xyz change)}, each max |swapped - right| /
    max |right| (test_pipeline's measure), in float64, from ref's float64 network outputs."""
    import pipeline
    base = {k: np.asarray(params[k], dtype=np.float64).reshape(-1) for k in PARAM_KEYS}
    mesh_uvd = (ref["mesh_raw_f64"] * np.asarray(graph["mask"], dtype=np.float64).reshape(-1, 1))[
        pipeline.perm_reverse(graph["perm"], int(graph["num_vertices"]))]
    pose_uvd = np.concatenate([ref["uv_f64"][1:] / float(pipeline.CROP), ref["depths_f64"].reshape(-1, 1)], axis=1)

    def xyz(uvd, p):
        z = uvd[:, 2] * p["scale"][0] + p["root"][2]
        u = uvd[:, 0] * p["bbox"][2] + p["bbox"][0]
        v = uvd[:, 1] * p["bbox"][3] + p["bbox"][1]
        return np.stack([(u - p["cam"][2]) / p["cam"][0] * z, (v - p["cam"][3]) / p["cam"][1] * z, z], axis=1)

    right_pose, right_mesh = xyz(pose_uvd, base), xyz(mesh_uvd, base)
    # the formula above is the reference's: it must give the stored float64 outputs
    assert np.allclose(right_mesh, ref["mesh_xyz_f64"], rtol=1e-12, atol=1e-9)
    assert np.allclose(right_pose, ref["pose_xyz_f64"][1:], rtol=1e-12, atol=1e-9)
    out = {}
    for name, key, i, j in SWAPS:
        p = {k: v.copy() for k, v in base.items()}
        p[key][[i, j]] = p[key][[j, i]]
        # pose_xyz's joint 0 is the given root, which no swap touches
        pose_mag = max(np.abs(ref["pose_xyz_f64"]).max(), 1e-30)
        out[name] = (float(np.abs(xyz(pose_uvd, p) - right_pose).max() / pose_mag),
                     float(np.abs(xyz(mesh_uvd, p) - right_mesh).max() / max(np.abs(right_mesh).max(), 1e-30)))
    return out


def expected_outputs(inputs):
    out = ["README"] + ["images/%s.png" % s for s, _, _, _ in inputs.images]
    if inputs.synthetic_template:
        out.append(SYNTHETIC_TEMPLATE)
    for seed in SEEDS:
        d = "seed%d/" % seed
        formats = ("legacy", "zip") if seed in ZIP_SEEDS else ("legacy",)
        out += [d + f + "/" + n + ".pth" for f in formats for n in handnet.STEMS]
        out.append(d + "state_dict.safetensors")
        if inputs.template:
            out += [d + "weights.safetensors"] + ([d + "weights_zip.safetensors"] if seed in ZIP_SEEDS else [])
        if inputs.graph is not None:
            out += [d + "ref_%s.safetensors" % s for s in images_for_seed(inputs, seed)]
    return out


def images_for_seed(inputs, seed):
    stems = [s for s, _, _, _ in inputs.images]
    if seed == 1:
        return stems
    real = [s for s in stems if s.startswith("real_")]
    synthetic = [s for s in stems if s.startswith("synthetic_")]
    return (real[:1] + synthetic[:1]) if real else synthetic[:2]


def up_to_date(out, inputs, stamp):
    try:
        with open(os.path.join(out, "stamp")) as f:
            if f.read().strip() != stamp:
                return False
    except OSError:
        return False
    return all(os.path.isfile(os.path.join(out, p)) and os.path.getsize(os.path.join(out, p)) > 0
               for p in expected_outputs(inputs))


def convert(checkpoint_dir, template, output):
    r = subprocess.run([sys.executable, CONVERTER, checkpoint_dir, "--template", template, "-o", output],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError("convert_weights.py failed on %s: %s" % (checkpoint_dir, r.stderr.strip()))


def state_dict_arrays(legacy_dir):
    arrays = {}
    for stem in handnet.STEMS:
        sd = torch.load(os.path.join(legacy_dir, stem + ".pth"), map_location="cpu")
        for key, value in sd.items():
            key = key[len("module."):] if key.startswith("module.") else key
            if key.endswith("num_batches_tracked"):
                continue
            arrays[stem + "." + key] = value.numpy()
    return arrays


def build(tmp, inputs):
    import pipeline
    cv2 = inputs.cv2
    os.makedirs(os.path.join(tmp, "images"))
    crops = {}
    for stem, crop, params, source in inputs.images:
        path = os.path.join(tmp, "images", stem + ".png")
        if not cv2.imwrite(path, crop):
            raise RuntimeError("cv2.imwrite failed: " + path)
        crops[stem] = (cv2.imread(path, cv2.IMREAD_COLOR), params, source)
        assert np.array_equal(crops[stem][0], crop)
    laplacians = inputs.graph["laplacians"] if inputs.graph is not None else None
    template = inputs.template
    if inputs.synthetic_template:
        template = os.path.join(tmp, SYNTHETIC_TEMPLATE)
        shutil.copyfile(inputs.template, template)
    swaps = []  # README lines
    for seed in SEEDS:
        t0 = time.time()
        d = os.path.join(tmp, "seed%d" % seed)
        nets = handnet.randomize(handnet.build_nets(laplacians), seed)
        handnet.save_release_style(nets, os.path.join(d, "legacy"))
        if seed in ZIP_SEEDS:
            handnet.save_modern(nets, os.path.join(d, "zip"))
        st_numpy.save(os.path.join(d, "state_dict.safetensors"), state_dict_arrays(os.path.join(d, "legacy")),
                      {"seed": seed, "source": "torch.load of legacy/*.pth"})
        if template:
            convert(os.path.join(d, "legacy"), template, os.path.join(d, "weights.safetensors"))
            if seed in ZIP_SEEDS:
                convert(os.path.join(d, "zip"), template, os.path.join(d, "weights_zip.safetensors"))
        if inputs.graph is not None:
            nets64 = pipeline.as_double(nets)
            for stem in images_for_seed(inputs, seed):
                crop, params, source = crops[stem]
                ref = pipeline.run(nets, inputs.graph, crop, **params)
                ref.update(pipeline.run_f64(nets64, inputs.graph, crop, **params))
                st_numpy.save(os.path.join(d, "ref_%s.safetensors" % stem), ref,
                              {"seed": seed, "image": "images/%s.png" % stem, "source": source,
                               "template": SYNTHETIC_TEMPLATE if inputs.synthetic_template else TEMPLATE_NAME})
                changes = swap_changes(ref, inputs.graph, params)
                swaps.append("  seed%d/ref_%s (%s): %s" % (
                    seed, stem, inputs.param_sets[stem] or "params.mat row",
                    "; ".join("%s %.2g / %.2g" % (k, a, b) for k, (a, b) in changes.items())))
                weak = [k for k, c in changes.items() if min(c) < SWAP_MIN_CHANGE]
                if inputs.param_sets[stem] is not None and weak:
                    raise RuntimeError("seed%d/ref_%s: a swap of %s moves pose_xyz/mesh_xyz by less than %g "
                                       "relative (%s): the made-up crop parameters no longer catch it"
                                       % (seed, stem, ", ".join(weak), SWAP_MIN_CHANGE, swaps[-1].strip()))
        log("seed %d done in %.1f s" % (seed, time.time() - t0))
    return swaps


def write_readme(tmp, inputs, swaps):
    lines = ["Test data made by tests/reference/make_testdata.py (see its docstring for the layout).",
             "Release data folder: " + inputs.shared,
             "Template: " + ("%s (generated stand-in; the release's is absent)" % SYNTHETIC_TEMPLATE
                            if inputs.synthetic_template else inputs.template or "none"), "", "Images:"]
    for stem, _, params, source in inputs.images:
        p = ", ".join("%s %s" % (k, [round(float(v), 6) for v in np.ravel(a)]) for k, a in params.items())
        made_up = inputs.param_sets.get(stem)
        lines.append("  images/%s.png: %s; %s%s" % (stem, source, (describe_params(made_up) + "; ") if made_up else "", p))
    lines += ["", "Seeds %s; ref_*.safetensors per seed: %s" % (
        ", ".join(map(str, SEEDS)), "; ".join("seed%d: %s" % (s, ", ".join(images_for_seed(inputs, s))) for s in SEEDS))]
    if swaps:
        lines += ["", "What a swap of two crop parameters in uvd-to-xyz would change, pose_xyz / mesh_xyz, as max",
                  "|change| / max |value| (test_pipeline's bound: 1e-5; required of made-up params: >= %g):" % SWAP_MIN_CHANGE]
        lines += swaps
    lines += ["", "Skipped:" if inputs.notes else "Skipped: nothing."] + ["  " + n for n in inputs.notes]
    with open(os.path.join(tmp, "README"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (replaced when inputs changed)")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    out = os.path.abspath(args.out)
    inputs = Inputs()
    try:
        return generate(args, out, inputs, t0)
    finally:
        shutil.rmtree(inputs.scratch, ignore_errors=True)


def generate(args, out, inputs, t0):
    for n in inputs.notes:
        log("note: " + n)
    stamp = inputs.stamp()
    if not args.force and up_to_date(out, inputs, stamp):
        log("%s up to date" % out)
        return 0
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = out + ".tmp-%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        swaps = build(tmp, inputs)
        write_readme(tmp, inputs, swaps)
        missing = [p for p in expected_outputs(inputs) if not os.path.isfile(os.path.join(tmp, p))]
        if missing:
            raise RuntimeError("outputs not produced: " + ", ".join(missing))
        with open(os.path.join(tmp, "stamp"), "w") as f:
            f.write(stamp + "\n")
        old = out + ".old-%d" % os.getpid()
        if os.path.exists(out):
            os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log("wrote %s in %.1f s" % (out, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
