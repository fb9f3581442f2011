#!/usr/bin/env python3
"""An evaluation of the network written from the spec (../shared/docs/original-method.md,
sections 4-5) with PyTorch, OpenCV, scipy and numpy, independent of the C++ code: what
examples/hand_eval must reproduce.

usage: eval_reference.py --dataset realworld|stb --data DIR [--bboxes FILE]
                         --checkpoints DIR --template OBJ --out OUT.npz
                         [--limit N] [--png-copy DIR]

  --dataset realworld   DIR = real_world_testset (params.mat, pose_gt.mat, JPEG crops)
  --dataset stb         DIR = STB root (<seq>/SK_color_<i>.png, labels/<seq>_SK.mat),
                        --bboxes = STB_eval_bboxes.mat (default DIR/../STB_eval_bboxes.mat)
  --checkpoints         folder with net_hm.pth, net_feat_mesh.pth, net_mesh_pose.pth
                        (either PyTorch serialisation; `module.` prefixes allowed)
  --template            the template OBJ the hand graph is built from
  --png-copy DIR        realworld only: also write DIR/ as a real_world_testset-shaped
                        folder whose images are the crops as decoded here (cv2), saved as
                        PNG (lossless), with params.mat (image_path -> .png) and pose_gt.mat
                        restricted to the evaluated frames

OUT.npz: image_ids (N,) str, gt_pose_xyz (N,21,3) float64 cm, est_pose_xyz (N,21,3)
float32 cm, est_uv (N,21,2) int32, uv_margin (N,21) float32 (relative gap between the
best and second-best upsampled heat-map value: ~0 at near-ties), heatmaps (N,21,64,64)
float32 (the last stack's), mesh_xyz (N,954,3) float32 cm, crops (N,256,256,3) uint8, and the metrics: frame_error_mm (N,),
root_relative_frame_error_mm (N,), mean_error_mm, joint_error_mm (21,),
root_relative_error_mm, pck_thresholds_mm (31,), pck (31,), auc_20_50.
"""
import argparse
import os
import sys

import cv2
import numpy as np
import scipy.io as sio
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import eval_stb_fixture  # noqa: E402  (STB labels and crops as spec section 5 computes them)
import hand_graph  # noqa: E402
import handnet  # noqa: E402
import pipeline  # noqa: E402

# Joint order of spec section 4, by name (the order of hand_eval's per-joint metrics).
JOINTS = (["wrist"] + ["%s_%d" % (f, i) for f in ("thumb", "index", "middle", "ring", "little") for i in range(1, 5)])
STB_SEQUENCES = ("B1Counting", "B1Random")
STB_CAMERA = np.array([607.92271, 607.88192, 314.78337, 236.42484])


# ------------------------------------------------------------------ data sets

def realworld_frames(root, limit):
    """Yields dicts: image_id, crop (cv2.imread), cam, bbox, root, scale, gt (21,3) cm."""
    params = sio.loadmat(os.path.join(root, "params.mat"))
    gt = sio.loadmat(os.path.join(root, "pose_gt.mat"))["pose_gt"]
    paths = [str(p).strip() for p in params["image_path"]]
    scales = params["pose_scale"].reshape(-1)
    n = len(paths) if not limit else min(limit, len(paths))
    for i in range(n):
        crop = cv2.imread(os.path.join(root, paths[i]), cv2.IMREAD_COLOR)
        if crop is None or crop.shape != (256, 256, 3):
            raise SystemExit("eval_reference: %s unreadable or not a 256x256 crop" % paths[i])
        yield dict(image_id=paths[i], crop=crop, cam=params["cam_param"][i].astype(np.float64),
                   bbox=params["bbox"][i].astype(np.float64), root=params["pose_root"][i].astype(np.float64),
                   scale=float(scales[i]), gt=gt[i].astype(np.float64))


def stb_frames(root, bboxes_path, limit):
    labels = []
    for seq in STB_SEQUENCES:
        hand_para = sio.loadmat(os.path.join(root, "labels", seq + "_SK.mat"))["handPara"]  # 3 x 21 x F
        labels += [(seq, f, hand_para[:, :, f].T) for f in range(hand_para.shape[2])]
    boxes = sio.loadmat(bboxes_path)["bboxes"]
    assert boxes.shape == (len(labels), 4), boxes.shape
    n = len(labels) if not limit else min(limit, len(labels))
    for i in range(n):
        seq, f, label = labels[i]
        image_id = "%s/SK_color_%d.png" % (seq, f)
        img = cv2.imread(os.path.join(root, image_id), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit("eval_reference: %s unreadable" % image_id)
        box = [int(v) for v in boxes[i]]  # truncation toward zero
        pose, root_cm, scale = eval_stb_fixture.convert(np.asarray(label, np.float64))
        yield dict(image_id=image_id, crop=eval_stb_fixture.crop_resize(img, box), cam=STB_CAMERA.copy(), bbox=np.array(box, np.float64),
                   root=root_cm, scale=float(scale), gt=pose)


# ------------------------------------------------------------------ the network

@torch.no_grad()
def run_batch(nets, graph, frames):
    """Spec section 4 on a batch of frames: the three networks on the stacked crops
    (pixel / 255 - 0.5, B, G, R), then per frame the 2D joints (bilinear x4 upsampling of
    the last heat-maps, first maximum), the 3D pose (uvd -> xyz, joint 0 = the given
    root) and the mesh (masked nodes -> xyz, template order), in float32 like the
    release. The per-frame helpers are tests/reference/pipeline.py's."""
    net_hm, net_feat_mesh, net_mesh_pose = nets
    x = torch.cat([pipeline.network_input(fr["crop"]) for fr in frames]).contiguous(memory_format=torch.channels_last)
    heatmaps, encodings = net_hm(x)
    _, mesh = net_feat_mesh(heatmaps[-1], encodings)
    mask = torch.as_tensor(np.asarray(graph["mask"]), dtype=torch.float32).reshape(1, -1, 1)
    mesh = mesh * mask
    depths = net_mesh_pose(mesh)
    rev = torch.as_tensor(pipeline.perm_reverse(graph["perm"], int(graph["num_vertices"])))
    out = []
    for b, fr in enumerate(frames):
        cam, bbox, root = (np.asarray(fr[k], np.float32) for k in ("cam", "bbox", "root"))
        scale = np.float32(fr["scale"])
        uv, uv_margin = pipeline.heatmap_uv(heatmaps[-1][b].contiguous(), with_margin=True)
        uvd = torch.cat([torch.as_tensor(uv[1:], dtype=torch.float32) / 256.0, depths[b].reshape(-1, 1)], dim=1)
        pose = torch.cat([torch.as_tensor(root).reshape(1, 3), pipeline.uvd_to_xyz(uvd, cam, bbox, root, scale)])
        mesh_xyz = pipeline.uvd_to_xyz(mesh[b], cam, bbox, root, scale)[rev]
        out.append(dict(pose_xyz=pose.numpy(), uv=uv, uv_margin=uv_margin, mesh_xyz=mesh_xyz.numpy(),
                        heatmaps=heatmaps[-1][b].contiguous().numpy()))
    return out


# ------------------------------------------------------------------ metrics (numpy)

def metrics(est_cm, gt_cm, thresholds=np.arange(20, 51, dtype=np.float64)):
    est = np.asarray(est_cm, np.float64)
    gt = np.asarray(gt_cm, np.float64)
    err = np.linalg.norm(est - gt, axis=2) * 10.0  # (N, 21) mm
    rel = np.linalg.norm((est - est[:, :1]) - (gt - gt[:, :1]), axis=2)[:, 1:] * 10.0
    pck = np.array([(err <= t).mean() for t in thresholds])
    area = np.sum((pck[1:] + pck[:-1]) / 2 * np.diff(thresholds))
    return dict(frame_error_mm=err.mean(axis=1), root_relative_frame_error_mm=rel.mean(axis=1),
                mean_error_mm=err.mean(axis=1).mean(), joint_error_mm=err.mean(axis=0),
                root_relative_error_mm=rel.mean(), pck_thresholds_mm=thresholds, pck=pck,
                auc_20_50=area / (thresholds[-1] - thresholds[0]))


# ------------------------------------------------------------------ main

def write_png_copy(out_dir, data_dir, frames):
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    params = sio.loadmat(os.path.join(data_dir, "params.mat"))
    gt = sio.loadmat(os.path.join(data_dir, "pose_gt.mat"))["pose_gt"]
    n = len(frames)
    paths = []
    for fr in frames:
        rel = os.path.splitext(fr["image_id"])[0] + ".png"
        if not cv2.imwrite(os.path.join(out_dir, rel), fr["crop"]):
            raise SystemExit("eval_reference: cannot write " + rel)
        paths.append(rel)
    sio.savemat(os.path.join(out_dir, "params.mat"), {
        "image_path": np.array(paths), "cam_param": params["cam_param"][:n], "bbox": params["bbox"][:n],
        "pose_root": params["pose_root"][:n], "pose_scale": params["pose_scale"].reshape(1, -1)[:, :n]})
    sio.savemat(os.path.join(out_dir, "pose_gt.mat"), {"pose_gt": gt[:n]})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=("realworld", "stb"), required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--bboxes")
    ap.add_argument("--checkpoints", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--png-copy")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="crops per forward pass (default 4)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.dataset == "realworld":
        frames = list(realworld_frames(args.data, args.limit))
    else:
        bboxes = args.bboxes or os.path.join(args.data, "..", "STB_eval_bboxes.mat")
        frames = list(stb_frames(args.data, bboxes, args.limit))
    if args.png_copy:
        if args.dataset != "realworld":
            raise SystemExit("eval_reference: --png-copy is for --dataset realworld")
        write_png_copy(args.png_copy, args.data, frames)

    graph = hand_graph.build_hand_graph(args.template)
    nets = handnet.load_checkpoints(args.checkpoints, graph["laplacians"])
    est, uv, margin, mesh, hms = [], [], [], [], []
    for start in range(0, len(frames), args.batch):
        for r in run_batch(nets, graph, frames[start:start + args.batch]):
            est.append(r["pose_xyz"])
            uv.append(r["uv"])
            margin.append(r["uv_margin"])
            mesh.append(r["mesh_xyz"])
            hms.append(r["heatmaps"])
    gt = np.array([fr["gt"] for fr in frames])
    m = metrics(np.array(est), gt)
    np.savez(args.out, image_ids=np.array([fr["image_id"] for fr in frames]), gt_pose_xyz=gt,
             est_pose_xyz=np.array(est, np.float32), est_uv=np.array(uv, np.int32), uv_margin=np.array(margin, np.float32),
             mesh_xyz=np.array(mesh, np.float32), heatmaps=np.array(hms, np.float32),
             crops=np.array([fr["crop"] for fr in frames], np.uint8), **m)
    print("eval_reference: %s, %d frames: mean error %.3f mm, AUC %.4f"
          % (args.dataset, len(frames), m["mean_error_mm"], m["auc_20_50"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
