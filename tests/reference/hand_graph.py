"""The hand graph of the released method, written from the spec (original-method.md, 3).

Independent numpy/scipy implementation that the C++ graph (include/handgraph/graph.hpp)
and the PyTorch reference pipeline are checked against. Needs numpy <= 1.24 (its
default argsort is the classic introsort the release relied on; see the spec) and scipy.

    build_hand_graph(obj_path) -> dict(
        perm=np.int64[1280], mask=np.bool_[1280], laplacians=[5 float32 csr_matrix:
        1280, 640, 320, 160, 80 nodes], faces=np.int32[1892, 3], num_vertices=954,
        perm_reverse=np.int64[954], lmax=np.float64[4])

CLI: python3 hand_graph.py --obj TEMPLATE.obj --out graph.safetensors
dumps perm, mask (U8), perm_reverse, faces, lmax and each Laplacian as CSR arrays
(`laplacian.<level>.row_ptr` I64, `.col` I64, `.values` F32).
"""
import argparse
import hashlib
import os
import sys

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

ARM_BEGIN, ARM_END = 473, 529  # template vertices of the arm, removed with their faces
LEVELS = 4                     # Heavy Edge Matching levels: 5 graphs in all

# Checked values from the spec.
PERM_SHA256_PREFIX = "c688e1da2aa15e61"
PERM_HEAD = [457, 458, 439, 451, 437, 438, 954, 955, 455, 456, 449, 450, 956, 957, 958, 959, 459, 462, 460, 960]
NNZ_PER_LEVEL = [6970, 3662, 1916, 998, 534]


def read_obj(path):
    """Vertices (n, 3) float32 and raw faces (m, 3) int32 (first index of each token, minus 1)."""
    vertices, faces = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                vertices.append([float(x) for x in parts[1:4]])
            elif parts[0] == "f":
                faces.append([int(tok.split("/")[0]) - 1 for tok in parts[1:]])
    return np.array(vertices, np.float32), np.array(faces, np.int32)


def hand_faces(raw_faces):
    """Spec 3.1: drop faces touching the arm, shift the indices above it down."""
    raw = np.asarray(raw_faces, np.int64)
    arm = ((raw >= ARM_BEGIN) & (raw < ARM_END)).any(axis=1)
    kept = raw[~arm]
    kept = np.where(kept >= ARM_END, kept - (ARM_END - ARM_BEGIN), kept)
    return kept.astype(np.int32)


def adjacency(faces, n):
    """Spec 3.2: float32, 1 per triangle edge, symmetric, no self loops; canonical CSR."""
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    rows = np.concatenate([a, b, a])
    cols = np.concatenate([b, c, c])
    W = scipy.sparse.coo_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, n)).tocsr()
    W.data[:] = 1.0                       # an edge shared by two triangles is still 1
    W = W.maximum(W.T).tocoo()
    off = W.row != W.col
    W = scipy.sparse.coo_matrix((W.data[off], (W.row[off], W.col[off])), shape=(n, n)).tocsr()
    W.sort_indices()
    return W.astype(np.float32)


def column_sums(W):
    return np.asarray(W.sum(axis=0), dtype=W.dtype).reshape(-1)


def heavy_edge_matching(W, degree, order):
    """Spec 3.3, one level: cluster id per node of W (canonical CSR)."""
    n = W.shape[0]
    ptr, idx, val = W.indptr, W.indices, W.data
    first = np.array([val[ptr[i]] if ptr[i + 1] > ptr[i] else 0.0 for i in range(n)], np.float64)
    marked = np.zeros(n, bool)
    cluster = np.full(n, -1, np.int64)
    count = 0
    for t in order:
        if marked[t]:
            continue
        marked[t] = True
        best, best_score = -1, 0.0
        for k in range(ptr[t], ptr[t + 1]):
            m = idx[k]
            if marked[m]:
                continue
            score = (2.0 * float(val[k]) + first[t] + first[m]) / (float(degree[t]) + float(degree[m]) + 1e-9)
            if score > best_score:
                best, best_score = m, score
        cluster[t] = count
        if best >= 0:
            cluster[best] = count
            marked[best] = True
        count += 1
    return cluster


def coarsen(W, levels=LEVELS):
    """Graphs (levels + 1, canonical CSR float32) and the cluster ids of each level."""
    graphs, parents = [W], []
    for level in range(levels):
        colsum = column_sums(W)
        degree = colsum - W.diagonal() if level == 0 else colsum
        order = np.argsort(colsum)        # numpy's default (introsort, not stable): the spec's point
        cluster = heavy_edge_matching(W, degree, order)
        parents.append(cluster)
        coo = W.tocoo()
        m = int(cluster.max()) + 1
        W = scipy.sparse.coo_matrix((coo.data, (cluster[coo.col], cluster[coo.row])), shape=(m, m)).tocsr()
        W.sum_duplicates()
        W.eliminate_zeros()
        W.sort_indices()
        graphs.append(W)
    return graphs, parents


def compute_perm(parents):
    """Spec 3.4: binary-tree orders, finest first; entries >= level size are fake nodes."""
    orders = [list(range(int(parents[-1].max()) + 1))]
    for cluster in reversed(parents):
        fake = len(cluster)
        members = {}
        for v, c in enumerate(cluster):
            members.setdefault(int(c), []).append(v)
        layer = []
        for node in orders[-1]:
            kids = members.get(node, [])
            assert len(kids) <= 2
            while len(kids) < 2:
                kids = kids + [fake]
                fake += 1
            layer.extend(kids)
        orders.append(layer)
    return [np.array(o, np.int64) for o in reversed(orders)]


def permute(W, order):
    """W (n x n) into the order's positions; fake nodes (>= n) isolated."""
    n, size = W.shape[0], len(order)
    position = np.empty(size, np.int64)
    position[order] = np.arange(size)
    coo = W.tocoo()
    P = scipy.sparse.coo_matrix((coo.data, (position[coo.row], position[coo.col])), shape=(size, size)).tocsr()
    P.sort_indices()
    return P


def normalized_laplacian(W):
    """L = I - D^-1/2 W D^-1/2, d = column sums + the smallest float32 > 0."""
    d = column_sums(W)
    d = d + np.spacing(np.array(0, W.dtype))
    d = (1 / np.sqrt(d)).astype(W.dtype)
    D = scipy.sparse.diags(d, 0)
    I = scipy.sparse.identity(d.size, dtype=W.dtype)
    return (I - D @ W @ D).tocsr().astype(np.float32)


def largest_eigenvalue(L):
    return float(scipy.sparse.linalg.eigsh(L.astype(np.float64), k=1, which="LM", return_eigenvectors=False)[0])


def build_hand_graph_from_mesh(vertices, raw_faces):
    """The graph from already-parsed template data (the weight file's template.*)."""
    vertices = np.asarray(vertices)
    faces = hand_faces(raw_faces)
    n = vertices.shape[0] - (ARM_END - ARM_BEGIN)
    W = adjacency(faces, n)
    graphs, parents = coarsen(W)
    orders = compute_perm(parents)
    laplacians, lmaxes = [], []
    for level, G in enumerate(graphs):
        L = normalized_laplacian(permute(G, orders[level]) if level < LEVELS else G)
        if level < LEVELS:
            lmax = largest_eigenvalue(L)
            # in float64, rounded to float32 once
            L = L.astype(np.float64) / (2 * lmax) - scipy.sparse.identity(L.shape[0], format="csr")
            lmaxes.append(lmax)
        L = L.tocsr().astype(np.float32)
        L.sort_indices()
        laplacians.append(L)
    perm = orders[0]
    perm_reverse = np.empty(n, np.int64)
    real = perm < n
    perm_reverse[perm[real]] = np.nonzero(real)[0]
    return dict(perm=perm, mask=real, laplacians=laplacians, faces=faces, num_vertices=n,
                perm_reverse=perm_reverse, lmax=np.array(lmaxes, np.float64))


def build_hand_graph(obj_path):
    vertices, raw_faces = read_obj(obj_path)
    return build_hand_graph_from_mesh(vertices, raw_faces)


def perm_sha256(perm):
    return hashlib.sha256(np.asarray(perm, "<i8").tobytes()).hexdigest()


def check_release(graph):
    """The spec's checked values (only meaningful for the release template)."""
    problems = []
    if not perm_sha256(graph["perm"]).startswith(PERM_SHA256_PREFIX):
        problems.append(f"perm sha256 {perm_sha256(graph['perm'])[:16]} != {PERM_SHA256_PREFIX}")
    if list(graph["perm"][:20]) != PERM_HEAD:
        problems.append(f"perm[:20] = {list(graph['perm'][:20])}")
    nnz = [L.nnz for L in graph["laplacians"]]
    if nnz != NNZ_PER_LEVEL:
        problems.append(f"nnz per level {nnz} != {NNZ_PER_LEVEL}")
    return problems


def dump(graph, out):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import st_numpy
    arrays = {
        "perm": graph["perm"].astype(np.int64),
        "perm_reverse": graph["perm_reverse"].astype(np.int64),
        "mask": graph["mask"].astype(np.uint8),
        "faces": graph["faces"].astype(np.int32),
        "lmax": graph["lmax"].astype(np.float64),
    }
    for level, L in enumerate(graph["laplacians"]):
        arrays[f"laplacian.{level}.row_ptr"] = L.indptr.astype(np.int64)
        arrays[f"laplacian.{level}.col"] = L.indices.astype(np.int64)
        arrays[f"laplacian.{level}.values"] = L.data.astype(np.float32)
    st_numpy.save(out, arrays, {"num_vertices": graph["num_vertices"], "perm_sha256": perm_sha256(graph["perm"])})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--obj", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--check", action="store_true", help="fail unless the spec's checked values hold")
    args = p.parse_args()
    graph = build_hand_graph(args.obj)
    dump(graph, args.out)
    if args.check:
        problems = check_release(graph)
        if problems:
            print("error: " + "; ".join(problems), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
