"""Reference end-to-end pipeline (spec section 4): 256x256 BGR crop -> 2D joints (uv),
3D pose (21x3, cm) and mesh (954x3, cm), with every intermediate, in float32 on CPU.

    graph = hand_graph.build_hand_graph(obj)            # tests/reference/hand_graph.py
    nets = handnet.build_nets(graph["laplacians"]); handnet.randomize(nets, 1)
    out = run(nets, graph, crop_bgr, cam, bbox, root, scale)
"""
import numpy as np
import torch
import torch.nn.functional as F

CROP = 256


def network_input(crop_bgr):
    """uint8 (256, 256, 3) B,G,R -> float32 (1, 3, 256, 256) = pixel / 255 - 0.5."""
    crop = np.asarray(crop_bgr)
    if crop.shape != (CROP, CROP, 3) or crop.dtype != np.uint8:
        raise ValueError("crop must be uint8 (256, 256, 3), got %s %s" % (crop.dtype, crop.shape))
    x = torch.from_numpy(np.ascontiguousarray(crop)).to(torch.float32)
    return (x / 255.0 - 0.5).permute(2, 0, 1).unsqueeze(0).contiguous()


def upsample_heatmaps(heatmaps):
    """(J, 64, 64) -> float32 (J, 256, 256), bilinear, align_corners=False."""
    hm = torch.as_tensor(heatmaps, dtype=torch.float32)
    return F.interpolate(hm.unsqueeze(0), size=(CROP, CROP), mode="bilinear", align_corners=False)[0].numpy()


def heatmap_uv(heatmaps, with_margin=False):
    """(J, 64, 64) -> int32 (J, 2) [u, v]: bilinear resize to 256x256 (align_corners=False),
    then the first maximum in row-major order of each joint's map. With with_margin, also
    float32 (J,) (best - second best) / |best| over the other pixels: 0 for exact ties
    (frequent at the borders, spec 4), tiny for near-ties that float rounding decides."""
    flat = upsample_heatmaps(heatmaps).reshape(len(heatmaps), -1)
    idx = np.argmax(flat, axis=1)  # numpy: first occurrence of the maximum
    uv = np.stack([idx % CROP, idx // CROP], axis=1).astype(np.int32)
    if not with_margin:
        return uv
    top2 = np.sort(flat, axis=1)[:, -2:].astype(np.float64)
    margin = (top2[:, 1] - top2[:, 0]) / np.maximum(np.abs(top2[:, 1]), 1e-30)
    return uv, margin.astype(np.float32)


def uvd_to_xyz(uvd, cam, bbox, root, scale):
    """(N, 3) normalised (u_n, v_n, d) -> (N, 3) camera xyz in cm (float32)."""
    uvd = torch.as_tensor(uvd, dtype=torch.float32)
    fx, fy, u0, v0 = torch.as_tensor(cam, dtype=torch.float32)
    x, y, w, h = torch.as_tensor(bbox, dtype=torch.float32)
    root = torch.as_tensor(root, dtype=torch.float32)
    scale = torch.as_tensor(scale, dtype=torch.float32).reshape(())
    u_img = uvd[:, 0] * w + x
    v_img = uvd[:, 1] * h + y
    z = uvd[:, 2] * scale + root[2]
    X = (u_img - u0) / fx * z
    Y = (v_img - v0) / fy * z
    return torch.stack([X, Y, z], dim=1)


def perm_reverse(perm, num_vertices):
    """perm_reverse[v] = position of template vertex v in the 1280-node order."""
    perm = np.asarray(perm)
    rev = np.full(num_vertices, -1, dtype=np.int64)
    real = np.nonzero(perm < num_vertices)[0]
    rev[perm[real]] = real
    assert (rev >= 0).all(), "perm does not cover every vertex"
    return rev


def as_double(nets):
    """A float64 copy of the three networks (Laplacians included): the same arithmetic
    with rounding errors ~1e-16, against which a float32 implementation is measured."""
    import copy
    out = []
    for net in nets:
        n = copy.deepcopy(net).double()
        for m in n.modules():
            if hasattr(m, "laplacians"):
                m.laplacians = [l.double() for l in m.laplacians]
        out.append(n)
    return tuple(out)


@torch.no_grad()
def run_f64(nets64, graph, crop_bgr, cam, bbox, root, scale):
    """The network part in float64 (nets from as_double): heatmaps_0/1, enc_0/1, features,
    mesh_raw, depths, mesh_xyz as float64 arrays, and uv (int32) and pose_xyz of the
    float64 heat-maps. Keys carry the suffix _f64."""
    net_hm, net_feat_mesh, net_mesh_pose = nets64
    x = network_input(crop_bgr).double()
    heatmaps, encodings = net_hm(x)
    features, mesh = net_feat_mesh(heatmaps[-1], encodings)
    mask = torch.as_tensor(np.asarray(graph["mask"]), dtype=torch.float64).reshape(1, -1, 1)
    mesh_masked = mesh * mask
    depths = net_mesh_pose(mesh_masked)
    hm = heatmaps[-1][0]
    up = F.interpolate(hm.unsqueeze(0), size=(CROP, CROP), mode="bilinear", align_corners=False)[0]
    idx = np.argmax(up.reshape(len(hm), -1).numpy(), axis=1)
    uv = np.stack([idx % CROP, idx // CROP], axis=1).astype(np.int32)
    cam64, bbox64, root64 = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (cam, bbox, root))
    scale64 = float(np.asarray(scale, dtype=np.float64).reshape(-1)[0])

    def xyz(uvd):
        uvd = np.asarray(uvd, dtype=np.float64)
        u = uvd[:, 0] * bbox64[2] + bbox64[0]
        v = uvd[:, 1] * bbox64[3] + bbox64[1]
        z = uvd[:, 2] * scale64 + root64[2]
        return np.stack([(u - cam64[2]) / cam64[0] * z, (v - cam64[3]) / cam64[1] * z, z], axis=1)

    uvd = np.concatenate([uv[1:] / float(CROP), depths[0].numpy().reshape(-1, 1)], axis=1)
    pose = np.concatenate([root64.reshape(1, 3), xyz(uvd)], axis=0)
    rev = perm_reverse(graph["perm"], int(graph["num_vertices"]))
    mesh_xyz = xyz(mesh_masked[0].numpy())[rev]
    f64 = lambda t: np.ascontiguousarray(t.detach().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    return {
        "heatmaps_0_f64": f64(heatmaps[0][0]), "heatmaps_1_f64": f64(heatmaps[1][0]),
        "enc_0_f64": f64(encodings[0][0]), "enc_1_f64": f64(encodings[1][0]),
        "features_f64": f64(features[0]), "mesh_raw_f64": f64(mesh[0]), "depths_f64": f64(depths[0]),
        "uv_f64": uv, "pose_xyz_f64": f64(pose), "mesh_xyz_f64": f64(mesh_xyz),
    }


@torch.no_grad()
def run(nets, graph, crop_bgr, cam, bbox, root, scale):
    """All outputs and intermediates as numpy arrays (float32 unless noted):
    heatmaps_0, heatmaps_1 (21,64,64), enc_0, enc_1 (256,64,64), features (4096),
    mesh_raw (1280,3), depths (20), uv (21,2) int32, uv_margin (21) (see heatmap_uv),
    pose_xyz (21,3), mesh_xyz (954,3), and the cam (4), bbox (4), root (3), scale (1) used."""
    net_hm, net_feat_mesh, net_mesh_pose = nets
    cam = np.asarray(cam, dtype=np.float32).reshape(4)
    bbox = np.asarray(bbox, dtype=np.float32).reshape(4)
    root = np.asarray(root, dtype=np.float32).reshape(3)
    scale = np.asarray(scale, dtype=np.float32).reshape(1)

    heatmaps, encodings = net_hm(network_input(crop_bgr))
    features, mesh = net_feat_mesh(heatmaps[-1], encodings)
    mask = torch.as_tensor(np.asarray(graph["mask"]), dtype=torch.float32).reshape(1, -1, 1)
    mesh_masked = mesh * mask
    depths = net_mesh_pose(mesh_masked)

    uv, uv_margin = heatmap_uv(heatmaps[-1][0], with_margin=True)
    uvd = torch.cat([torch.as_tensor(uv[1:], dtype=torch.float32) / CROP, depths[0].reshape(-1, 1)], dim=1)
    pose = torch.cat([torch.as_tensor(root).reshape(1, 3), uvd_to_xyz(uvd, cam, bbox, root, scale)], dim=0)

    nodes_xyz = uvd_to_xyz(mesh_masked[0], cam, bbox, root, scale)
    rev = perm_reverse(graph["perm"], int(graph["num_vertices"]))
    mesh_xyz = nodes_xyz[torch.as_tensor(rev)]

    f32 = lambda t: np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)
    return {
        "heatmaps_0": f32(heatmaps[0][0]), "heatmaps_1": f32(heatmaps[1][0]),
        "enc_0": f32(encodings[0][0]), "enc_1": f32(encodings[1][0]),
        "features": f32(features[0]), "mesh_raw": f32(mesh[0]), "depths": f32(depths[0]),
        "uv": uv, "uv_margin": uv_margin, "pose_xyz": f32(pose), "mesh_xyz": f32(mesh_xyz),
        "cam": cam, "bbox": bbox, "root": root, "scale": scale,
    }
