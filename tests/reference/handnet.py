"""PyTorch reference of the three networks of Ge et al. CVPR 2019, written from the spec
(../shared/docs/original-method.md, section 2), inference mode only.

Module and attribute names are chosen so that `state_dict()` keys equal those of
checkpoint-keys.tsv exactly (test_handnet.py checks it). The hand graph's Laplacians are
passed to the graph networks' constructors as torch tensors (sparse or dense), level 0
(1280 nodes) to level 4 (80 nodes); see tests/reference/hand_graph.py.

    nets = build_nets(laplacians)          # (net_hm, net_feat_mesh, net_mesh_pose), eval()
    randomize(nets, seed)                   # random weights, non-trivial BN statistics
    save_release_style(nets, dir)           # legacy .pth, `module.` keys, num_batches_tracked
    save_modern(nets, dir)                  # zip .pth, plain keys
"""
import collections
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_JOINTS, NUM_STACKS, NUM_FEATURES = 21, 2, 256
STEMS = ("net_hm", "net_feat_mesh", "net_mesh_pose")
CHEB_K = 3


# ------------------------------------------------------------------------- net_hm

class Residual(nn.Module):
    """Pre-activation bottleneck; BN of the input feeds the branch only."""

    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.bn = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1)
        if cin != cout:
            self.conv4 = nn.Conv2d(cin, cout, 1)
        self.project = cin != cout

    def forward(self, x):
        y = self.conv1(F.relu(self.bn(x)))
        y = self.conv2(F.relu(self.bn1(y)))
        y = self.conv3(F.relu(self.bn2(y)))
        return y + (self.conv4(x) if self.project else x)


class Hourglass(nn.Module):
    def __init__(self, depth, modules=2, feats=NUM_FEATURES):
        super().__init__()
        self.depth = depth
        self.up1_ = nn.ModuleList([Residual(feats, feats) for _ in range(modules)])
        self.low1_ = nn.ModuleList([Residual(feats, feats) for _ in range(modules)])
        if depth > 1:
            self.low2 = Hourglass(depth - 1, modules, feats)
        else:
            self.low2_ = nn.ModuleList([Residual(feats, feats) for _ in range(modules)])
        self.low3_ = nn.ModuleList([Residual(feats, feats) for _ in range(modules)])

    def forward(self, x):
        up = x
        for m in self.up1_:
            up = m(up)
        low = F.max_pool2d(x, 2, 2)
        for m in self.low1_:
            low = m(low)
        if self.depth > 1:
            low = self.low2(low)
        else:
            for m in self.low2_:
                low = m(low)
        for m in self.low3_:
            low = m(low)
        return up + F.interpolate(low, scale_factor=2, mode="nearest")


class NetHM(nn.Module):
    """Stacked hourglass: 1x3x256x256 -> ([hm_0, hm_1] 21x64x64, [enc_0, enc_1] 256x64x64)."""

    def __init__(self, stacks=NUM_STACKS, feats=NUM_FEATURES, joints=NUM_JOINTS):
        super().__init__()
        self.stacks = stacks
        self.conv1_ = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.r1 = Residual(64, 128)
        self.r4 = Residual(128, 128)
        self.r5 = Residual(128, feats)
        self.hourglass = nn.ModuleList([Hourglass(4, 2, feats) for _ in range(stacks)])
        self.Residual = nn.ModuleList([Residual(feats, feats) for _ in range(2 * stacks)])
        self.lin_ = nn.ModuleList([nn.Sequential(nn.Conv2d(feats, feats, 1), nn.BatchNorm2d(feats))
                                   for _ in range(stacks)])
        self.tmpOut = nn.ModuleList([nn.Conv2d(feats, joints, 1) for _ in range(stacks)])
        self.ll_ = nn.ModuleList([nn.Conv2d(feats, feats, 1) for _ in range(stacks - 1)])
        self.tmpOut_ = nn.ModuleList([nn.Conv2d(joints, feats, 1) for _ in range(stacks - 1)])

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1_(x)))
        x = self.r1(x)
        x = F.max_pool2d(x, 2, 2)
        x = self.r5(self.r4(x))
        heatmaps, encodings = [], []
        for i in range(self.stacks):
            hg = self.hourglass[i](x)
            ll = self.Residual[2 * i + 1](self.Residual[2 * i](hg))
            ll = F.relu(self.lin_[i](ll))
            hm = self.tmpOut[i](ll)
            heatmaps.append(hm)
            if i < self.stacks - 1:
                x = x + self.ll_[i](ll) + self.tmpOut_[i](hm)
                encodings.append(x)
            else:
                encodings.append(ll)
        return heatmaps, encodings


# ------------------------------------------------------------------ graph layers

def cheb_conv(linear, laplacian, x, K=CHEB_K):
    """Chebyshev graph convolution of x (B, V, Fin); features ordered fin * K + k."""
    B, V, Fin = x.shape
    x0 = x.permute(1, 2, 0).reshape(V, Fin * B)  # V x (Fin*B)

    def lmul(t):
        return torch.sparse.mm(laplacian, t) if laplacian.is_sparse else laplacian @ t
    terms = [x0]
    if K > 1:
        terms.append(lmul(x0))
    for _ in range(2, K):
        terms.append(2 * lmul(terms[-1]) - terms[-2])
    t = torch.stack(terms, 0).reshape(K, V, Fin, B)  # K, V, Fin, B
    t = t.permute(3, 1, 2, 0).reshape(B * V, Fin * K)  # index fin * K + k
    return linear(t).reshape(B, V, -1)


def graph_upsample(x, factor=4):
    """Node n -> nodes factor*n .. factor*n+factor-1 (x: B, V, F)."""
    return x.repeat_interleave(factor, dim=1)


def graph_maxpool(x, factor=4):
    """Max over groups of `factor` consecutive nodes (x: B, V, F)."""
    B, V, Fe = x.shape
    return x.reshape(B, V // factor, factor, Fe).amax(dim=2)


def node_bn(bn, x):
    """BatchNorm1d over the features of x (B, V, F)."""
    B, V, Fe = x.shape
    return bn(x.reshape(B * V, Fe)).reshape(B, V, Fe)


class FC(nn.Module):
    def __init__(self, fin, fout):
        super().__init__()
        self.fc = nn.Linear(fin, fout)

    def forward(self, x):
        return self.fc(x)


class FCStack(nn.Module):
    def __init__(self, fin, mid, fout):
        super().__init__()
        self.fc_1 = FC(fin, mid)
        self.fc_2 = FC(mid, fout)


def _laplacian_buffers(module, laplacians):
    # Kept as plain attributes (not buffers) so that state_dict() holds weights only.
    module.laplacians = [l if isinstance(l, torch.Tensor) else torch.as_tensor(l) for l in laplacians]


# ------------------------------------------------------------- net_feat_mesh

class FeatNet(nn.Module):
    def __init__(self, feats=NUM_FEATURES, joints=NUM_JOINTS):
        super().__init__()
        self.heatmap_conv = nn.Conv2d(joints, feats, 1)
        self.encoding_conv = nn.Conv2d(feats, feats, 1)
        self.reg_ = nn.ModuleList([Residual(feats, feats) for _ in range(8)])

    def forward(self, hm, encodings):
        x = self.heatmap_conv(hm) + self.encoding_conv(encodings[1]) + encodings[0]
        for b in range(4):
            x = self.reg_[2 * b + 1](self.reg_[2 * b](x))
            x = F.max_pool2d(x, 2, 2)
        return x.reshape(x.shape[0], -1)  # C, H, W order -> 4096


class MeshNet(nn.Module):
    def __init__(self, laplacians):
        super().__init__()
        self.fc = FCStack(4096, 512, 80 * 64)
        self.cl = nn.ModuleList([nn.Linear(fin * CHEB_K, fout)
                                 for fin, fout in [(64, 64), (64, 32), (32, 32), (32, 3)]])
        self.bn = nn.ModuleList([nn.BatchNorm1d(c) for c in (64, 32, 32)])
        _laplacian_buffers(self, laplacians)

    def forward(self, features):
        L = self.laplacians
        x = F.relu(self.fc.fc_1(features))
        x = self.fc.fc_2(x).reshape(features.shape[0], 80, 64)
        x = graph_upsample(x)  # 320 nodes
        x = F.relu(node_bn(self.bn[0], cheb_conv(self.cl[0], L[2], x)))
        x = F.relu(node_bn(self.bn[1], cheb_conv(self.cl[1], L[2], x)))
        x = graph_upsample(x)  # 1280 nodes
        x = F.relu(node_bn(self.bn[2], cheb_conv(self.cl[2], L[0], x)))
        return cheb_conv(self.cl[3], L[0], x)


class NetFeatMesh(nn.Module):
    """(hm_1, [enc_0, enc_1]) -> (features 4096, mesh 1280x3)."""

    def __init__(self, laplacians):
        super().__init__()
        self.feat_net = FeatNet()
        self.mesh_net = MeshNet(laplacians)

    def forward(self, hm, encodings):
        features = self.feat_net(hm, encodings)
        return features, self.mesh_net(features)


# ------------------------------------------------------------- net_mesh_pose

class NetMeshPose(nn.Module):
    """Masked mesh (B, 1280, 3) -> relative depths of joints 1..20. No BN, no ReLU."""

    def __init__(self, laplacians):
        super().__init__()
        channels = [(3, 32), (32, 32), (32, 64), (64, 64)]
        self.cl = nn.ModuleList([nn.Linear(fin * CHEB_K, fout) for fin, fout in channels])
        self.bn = nn.ModuleList([nn.BatchNorm1d(fout) for _, fout in channels])  # unused
        self.fc = FCStack(80 * 64, 512, NUM_JOINTS - 1)
        _laplacian_buffers(self, laplacians)

    def forward(self, mesh):
        L = self.laplacians
        x = cheb_conv(self.cl[0], L[0], mesh)
        x = cheb_conv(self.cl[1], L[0], x)
        x = graph_maxpool(x)  # 320
        x = cheb_conv(self.cl[2], L[2], x)
        x = cheb_conv(self.cl[3], L[2], x)
        x = graph_maxpool(x)  # 80
        x = x.reshape(x.shape[0], -1)  # node-major
        return self.fc.fc_2(self.fc.fc_1(x))


# ------------------------------------------------------------------- helpers

def scipy_to_torch(matrix):
    """scipy.sparse matrix -> torch sparse COO float32 tensor."""
    coo = matrix.tocoo()
    idx = torch.stack([torch.as_tensor(coo.row, dtype=torch.int64),
                       torch.as_tensor(coo.col, dtype=torch.int64)])
    return torch.sparse_coo_tensor(idx, torch.as_tensor(coo.data, dtype=torch.float32),
                                   coo.shape).coalesce()


def placeholder_laplacians():
    """Zero Laplacians of the right sizes, for uses that need no hand graph."""
    return [torch.zeros(n, n) for n in (1280, 640, 320, 160, 80)]


def build_nets(laplacians=None):
    """(net_hm, net_feat_mesh, net_mesh_pose) in eval mode; laplacians: 5 tensors or
    scipy matrices (level 0 = 1280 nodes ... level 4 = 80 nodes)."""
    if laplacians is None:
        laplacians = placeholder_laplacians()
    laplacians = [scipy_to_torch(l) if hasattr(l, "tocoo") else l for l in laplacians]
    nets = (NetHM(), NetFeatMesh(laplacians), NetMeshPose(laplacians))
    for n in nets:
        n.eval()
    return nets


def load_checkpoints(directory, laplacians):
    """(net_hm, net_feat_mesh, net_mesh_pose) in eval mode with the weights of
    DIR/<stem>.pth (legacy or zip; `module.` prefixes stripped), Laplacians as build_nets
    takes them (scipy matrices, or dense torch tensors for the ONNX export)."""
    nets = build_nets(laplacians)
    for stem, net in zip(STEMS, nets):
        sd = torch.load(os.path.join(directory, stem + ".pth"), map_location="cpu")
        sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
        net.load_state_dict(sd, strict=True)
        net.eval()
    return nets


@torch.no_grad()
def randomize(nets, seed):
    """Random weights that keep activations O(1) through the whole depth.

    Convs and linears: N(0, 1/fan_in), halved for the last conv of each residual branch
    and the projection, so the many residual additions (and the hourglass `up + low`
    sums) do not explode; biases N(0, 0.1). BN: weight in [0.5, 1.5], bias N(0, 0.2),
    running statistics calibrated on a probe image then perturbed (_calibrate_bn).
    """
    g = torch.Generator().manual_seed(int(seed))

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    for net in nets:
        for name, m in net.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                std = 1.0 / fan_in ** 0.5
                if name.endswith("conv3") or name.endswith("conv4"):
                    std *= 0.5
                m.weight.copy_(normal(m.weight.shape, std))
                m.bias.copy_(normal(m.bias.shape, 0.1))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(uniform(c, 0.5, 1.5))
                m.bias.copy_(normal(c, 0.2))
                m.running_mean.copy_(normal(c, 0.3))
                m.running_var.copy_(uniform(c, 0.5, 2.0))
                m.num_batches_tracked.fill_(1000 + int(seed))
    _calibrate_bn(nets, g)
    return nets


@torch.no_grad()
def _calibrate_bn(nets, g):
    """Set BN running statistics near those observed on a fixed random probe image
    (randomly perturbed: mean + 0.2 std noise, var times [0.5, 2]), which keeps them
    non-trivial yet every pre-activation O(1) through the whole depth."""
    net_hm, net_feat_mesh, _ = nets
    probe = torch.rand(1, 3, 256, 256, generator=g) - 0.5
    hooks = []

    def calibrate(m, inputs):
        x = inputs[0]
        dims = [0, 2, 3] if x.dim() == 4 else [0]
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False) + 1e-3
        c = mean.numel()
        m.running_mean.copy_(mean + 0.2 * var.sqrt() * torch.randn(c, generator=g))
        m.running_var.copy_(var * (0.5 + 1.5 * torch.rand(c, generator=g)))

    for net in (net_hm, net_feat_mesh):
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                hooks.append(m.register_forward_pre_hook(calibrate))
    try:
        hm, enc = net_hm(probe)
        net_feat_mesh(hm[-1], enc)
    finally:
        for h in hooks:
            h.remove()


def _state_dicts(nets):
    return [n.state_dict() for n in nets]


def save_release_style(nets, directory):
    """Legacy serialisation (as PyTorch 0.4-1.5 wrote it) of DataParallel state dicts:
    `module.` prefixed keys, num_batches_tracked included."""
    os.makedirs(directory, exist_ok=True)
    for stem, net in zip(STEMS, nets):
        sd = nn.DataParallel(net).state_dict()
        assert all(k.startswith("module.") for k in sd)
        torch.save(sd, os.path.join(directory, stem + ".pth"), _use_new_zipfile_serialization=False)


def save_modern(nets, directory):
    """Zip serialisation (PyTorch >= 1.6) of plain state dicts."""
    os.makedirs(directory, exist_ok=True)
    for stem, net in zip(STEMS, nets):
        torch.save(net.state_dict(), os.path.join(directory, stem + ".pth"))


def read_key_table(tsv_path):
    """checkpoint-keys.tsv -> {stem: [(key, shape tuple, dtype)]} in file order."""
    table = collections.OrderedDict()
    with open(tsv_path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            fname, key, shape, dtype = line.rstrip("\n").split("\t")
            shape = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
            table.setdefault(fname[:-len(".pth")], []).append((key, shape, dtype))
    return table
