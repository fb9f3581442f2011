"""The timed pipeline on the PyTorch side of benchmarks/compare, as one nn.Module, built
on the reference networks of tests/reference (handnet.py, hand_graph.py, pipeline.py).

    HandPipeline(nets, graph)(crop_u8 (B, 256, 256, 3) BGR, params (B, 12) float32)
      -> heatmaps_0, heatmaps_1 (B, 21, 64, 64), mesh_raw (B, 1280, 3), depths (B, 20),
         uv (B, 21, 2) int64, pose_xyz (B, 21, 3), mesh_xyz (B, 954, 3)

params per crop: cam fx, fy, u0, v0 | bbox x, y, w, h | root x, y, z (cm) | scale (cm).
This is the scope of handgraph's model::estimate(): crop bytes in; input normalisation,
the three networks, the 2D joints (bilinear x4 upsampling of the last heat-maps and the
first maximum, as pipeline.heatmap_uv), 3D joints and mesh in camera space out. The same
module runs eagerly for PyTorch (sparse Laplacians, as the reference builds them) and is
exported to ONNX for ONNX Runtime (dense Laplacians: torch.sparse does not export).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "reference"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import handnet  # noqa: E402
import hand_graph  # noqa: E402

CROP = 256
OUTPUT_NAMES = ["heatmaps_0", "heatmaps_1", "mesh_raw", "depths", "uv", "pose_xyz", "mesh_xyz"]


load_checkpoints = handnet.load_checkpoints  # (for compare.py)


def dense_laplacians(graph):
    return [torch.as_tensor(np.asarray(L.toarray(), dtype=np.float32)) for L in graph["laplacians"]]


class HandPipeline(nn.Module):
    def __init__(self, nets, graph):
        super().__init__()
        self.net_hm, self.net_feat_mesh, self.net_mesh_pose = nets
        mask = np.asarray(graph["mask"], dtype=np.float32).reshape(1, -1, 1)
        self.register_buffer("mask", torch.as_tensor(mask), persistent=False)
        self.register_buffer("rev", torch.as_tensor(np.asarray(graph["perm_reverse"], dtype=np.int64)), persistent=False)
        self.eval()

    @staticmethod
    def _xyz(uvd, params):
        """(B, N, 3) normalised (u, v, depth) -> camera space (cm), float32 as pipeline.uvd_to_xyz."""
        fx, fy, u0, v0 = (params[:, i:i + 1] for i in range(4))
        bx, by, bw, bh = (params[:, i:i + 1] for i in range(4, 8))
        rz, scale = params[:, 10:11], params[:, 11:12]
        u = uvd[..., 0] * bw + bx
        v = uvd[..., 1] * bh + by
        z = uvd[..., 2] * scale + rz
        return torch.stack([(u - u0) / fx * z, (v - v0) / fy * z, z], dim=-1)

    def forward(self, crop_u8, params):
        b = crop_u8.shape[0]
        x = (crop_u8.to(torch.float32) / 255.0 - 0.5).permute(0, 3, 1, 2)
        heatmaps, encodings = self.net_hm(x)
        _, mesh = self.net_feat_mesh(heatmaps[-1], encodings)
        mesh_masked = mesh * self.mask
        depths = self.net_mesh_pose(mesh_masked)
        up = F.interpolate(heatmaps[-1], size=(CROP, CROP), mode="bilinear", align_corners=False)
        idx = up.reshape(b, handnet.NUM_JOINTS, CROP * CROP).argmax(dim=-1)  # first maximum
        u = idx % CROP
        v = (idx - u) // CROP
        uv = torch.stack([u, v], dim=-1)
        uvd = torch.cat([uv[:, 1:].to(torch.float32) / CROP, depths.unsqueeze(-1)], dim=-1)
        pose = torch.cat([params[:, 8:11].unsqueeze(1), self._xyz(uvd, params)], dim=1)
        mesh_xyz = self._xyz(mesh_masked, params).index_select(1, self.rev)
        return heatmaps[0], heatmaps[1], mesh, depths, uv, pose, mesh_xyz


def params_row(p):
    return np.concatenate([np.ravel(p["cam"]), np.ravel(p["bbox"]), np.ravel(p["root"]), np.ravel(p["scale"])]).astype(np.float32)


def export_onnx(pipe, path, batch, opset=17):
    """Static-shape export (batch fixed) so ONNX Runtime can fold every shape computation."""
    crop = torch.zeros(batch, CROP, CROP, 3, dtype=torch.uint8)
    params = torch.ones(batch, 12, dtype=torch.float32)
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(pipe, (crop, params), tmp, input_names=["crop", "params"], output_names=OUTPUT_NAMES,
                          opset_version=opset, do_constant_folding=True)
    os.replace(tmp, path)


def build_graph(template):
    return hand_graph.build_hand_graph(template)
