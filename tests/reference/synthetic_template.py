"""A procedurally generated stand-in for the release's template mesh (licensed data).

Same layout as 0214_lowP_vn_g.0001.obj where the hand graph cares: 1010 vertices, the
"arm" at vertices 473..528 (its faces are dropped by the graph code, spec 3.1), 954 hand
vertices, and Heavy Edge Matching coarsens it to exactly 80 nodes (graph levels of 1280,
640, 320, 160 and 80 nodes), so the network runs on it. It is a flat hand on an integer
lattice: a palm, four fingers and a thumb (rectangles of lattice points), the arm below
the palm; every lattice square is split along a diagonal chosen by a seeded splitmix64.
The seed was found by search (`--search`): seeds give 77..86 coarsest nodes, 6 is the
first with 80.
Coordinates are dyadic (exact in float32). include/handgraph/synthetic_template.hpp is the
C++ twin; the two must stay identical.

    synthetic_template() -> (vertices float32 (1010, 3), faces int32 (m, 3), 0-based)
    write_obj(path)      -> writes it as an OBJ file (faces as `f a b c`, 1-based)
CLI: synthetic_template.py --out template.obj | --search N
"""
import argparse
import sys

import numpy as np

SEED = 6  # chosen by --search: the first seed giving 80 coarsest nodes

PALM = (0, 19, 0, 18)                 # x0, x1, y0, y1 (half-open) of each rectangle
FINGERS = [(0, 4, 18, 48), (5, 9, 18, 52), (10, 14, 18, 50), (15, 19, 18, 44)]
THUMB = (-31, 0, 3, 7)
ARM = (5, 13, -7, 0)                  # 56 vertices, placed at indices 473..528
ARM_INDEX = 473

MASK64 = (1 << 64) - 1


def splitmix64(state):
    """(new state, output) of splitmix64."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def _points(rect):
    x0, x1, y0, y1 = rect
    return [(x, y) for y in range(y0, y1) for x in range(x0, x1)]


def synthetic_template(seed=SEED):
    hand = set()
    for rect in [PALM, THUMB] + FINGERS:
        hand.update(_points(rect))
    arm = sorted(_points(ARM), key=lambda p: (p[1], p[0]))
    ordered = sorted(hand, key=lambda p: (p[1], p[0]))
    ordered = ordered[:ARM_INDEX] + arm + ordered[ARM_INDEX:]
    index = {p: i for i, p in enumerate(ordered)}
    vertices = np.array([[0.5 * x, 0.375 * y, -((x - 9) * (x - 9)) / 64.0] for x, y in ordered], np.float32)
    faces = []
    state = seed
    for y in range(min(p[1] for p in ordered), max(p[1] for p in ordered)):
        for x in range(min(p[0] for p in ordered), max(p[0] for p in ordered)):
            corners = [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]
            if not all(c in index for c in corners):
                continue
            a, b, c, d = (index[k] for k in corners)
            state, r = splitmix64(state)
            if r >> 63:
                faces += [[a, b, d], [a, d, c]]
            else:
                faces += [[a, b, c], [b, d, c]]
    return vertices, np.array(faces, np.int32)


def write_obj(path, seed=SEED):
    vertices, faces = synthetic_template(seed)
    with open(path, "w") as f:
        f.write("# handgraph synthetic template (tests/reference/synthetic_template.py), seed %d\n" % seed)
        for v in vertices:
            f.write("v %r %r %r\n" % (float(v[0]), float(v[1]), float(v[2])))
        for t in faces:
            f.write("f %d %d %d\n" % (t[0] + 1, t[1] + 1, t[2] + 1))


def coarsest_size(vertices, faces):
    import hand_graph
    faces = hand_graph.hand_faces(faces)
    W = hand_graph.adjacency(faces, vertices.shape[0] - (hand_graph.ARM_END - hand_graph.ARM_BEGIN))
    _, parents = hand_graph.coarsen(W)
    return [len(p) for p in parents] + [int(parents[-1].max()) + 1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="write the OBJ here")
    p.add_argument("--search", type=int, default=0, help="print the level sizes of seeds 0..N-1")
    args = p.parse_args()
    if args.out:
        write_obj(args.out)
    for seed in range(args.search):
        sizes = coarsest_size(*synthetic_template(seed))
        print(seed, sizes, "<- 80" if sizes[-1] == 80 else "", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
