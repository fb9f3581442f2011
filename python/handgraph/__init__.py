"""handgraph: 3D hand shape and pose from one RGB image (Ge et al., CVPR 2019) on the CPU.

    import cv2, handgraph
    model = handgraph.Model("weights/hand_graph_stb.safetensors")
    image = cv2.imread("photo.jpg")                     # H x W x 3 uint8, B, G, R
    r = model.estimate(image, hand_box=(412, 220, 180, 210))
    r.uv_image, r.pose_xyz, r.mesh_xyz, model.faces     # (21, 2) px, (21, 3) cm, (954, 3) cm, (1892, 3)

Model (weights, and a pool of contexts for calls made without one), Context (threads and
scratch memory), HandResult (what estimate returns), PalmDetector (the hand finder:
MediaPipe's palm detector; Model.estimate_hands finds and estimates), Error (a
RuntimeError), read_image (an image file decoded as hand_demo and hand_eval decode it),
available_kernels(), prepare_weights (a weight file that loads several times faster).
See help(handgraph.Model) and the README's section "Python".
"""
from ._core import (Context, Error, HandResult, Model, PalmDetection, PalmDetector, available_kernels, crop_size,  # noqa: F401
                    num_joints, num_vertices, prepare_weights, read_image)

__all__ = ["Context", "Error", "HandResult", "Model", "PalmDetection", "PalmDetector", "available_kernels", "crop_size",
           "num_joints", "num_vertices", "prepare_weights", "read_image"]

# Shown as handgraph.X (not handgraph._core.X) in help(), repr() and tracebacks.
for _name in ("Context", "Error", "HandResult", "Model", "PalmDetection", "PalmDetector", "available_kernels", "prepare_weights", "read_image"):
    try:
        globals()[_name].__module__ = __name__
    except (AttributeError, TypeError):  # pragma: no cover
        pass
del _name
