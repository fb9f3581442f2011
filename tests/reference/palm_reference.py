#!/usr/bin/env python3
"""numpy reference of MediaPipe's palm detector, run from the .tflite file itself.

Written from the TFLite op definitions (tensorflow/lite/kernels/*: SAME padding of
kernels/padding.h, conv, depthwise conv, PReLU, add, max-pool, pad, bilinear resize,
reshape, concatenation, dequantize) and MediaPipe's pre- and post-processing (its public
source: ImageToTensorCalculator with keep_aspect_ratio, SsdAnchorsCalculator,
TensorsToDetectionsCalculator, NonMaxSuppressionCalculator (WEIGHTED),
DetectionLetterboxRemovalCalculator, DetectionsToRectsCalculator,
RectTransformationCalculator), with the settings that ../shared/data/mediapipe/README.md
decodes from the hand solution's graph; each constant below says where it comes from.

The .tflite is read with tools/convert_palm.py's flatbuffer layer (TFLiteModel: tables,
vectors, buffers) only; everything else (which op does what, padding, dequantizing the
float16 weights, the wiring) is done here again, so that this file checks the converter's
graph and not the other way round. `run_converted` runs the converter's output (the graph
in its metadata, the float32 weights) with the same kernels, so the two can be compared.

    palm_reference.py MODEL.tflite IMAGE... [--dump OUT.safetensors] [--json OUT.json]
    palm_reference.py MODEL.tflite --realworld DIR [--limit N] [--json OUT.json]
    palm_reference.py MODEL.tflite --crosscheck IMAGE     # op by op against PyTorch and cv2

Images are read with cv2 (BGR) and given to the detector as RGB, as MediaPipe's hand
solution does. Arithmetic in float64 unless --float32.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools"))
sys.path.insert(0, HERE)

import convert_palm  # noqa: E402  (flatbuffer layer only: TFLiteModel)

# ------------------------------------------------------------------------------------
# MediaPipe's settings for the palm detectors (README "Facts checked"; MediaPipe's
# palm_detection_cpu graph / hand solution options, decoded from the package's wasm)
# ------------------------------------------------------------------------------------
INPUT_SIZE = 192                   # input_1 is [1, 192, 192, 3]
# ImageToTensorCalculator: keep_aspect_ratio true, output_tensor_float_range 0..1,
# border_mode BORDER_ZERO; pixels mapped by value * (1 - 0) / 255 + 0.
RANGE_MIN, RANGE_MAX = 0.0, 1.0
# SsdAnchorsCalculator options
ANCHORS = dict(num_layers=4, min_scale=0.1484375, max_scale=0.75, input_h=192, input_w=192,
               offset_x=0.5, offset_y=0.5, strides=(8, 16, 16, 16), aspect_ratios=(1.0,),
               interpolated_scale_aspect_ratio=1.0, fixed_anchor_size=True)
NUM_BOXES = 2016                   # 24*24*2 + 12*12*6
# TensorsToDetectionsCalculator options
NUM_COORDS = 18                    # box 4 + 7 keypoints * 2
BOX_COORD_OFFSET = 0
KEYPOINT_COORD_OFFSET = 4
NUM_KEYPOINTS = 7
X_SCALE = Y_SCALE = W_SCALE = H_SCALE = 192.0
SCORE_CLIPPING_THRESH = 100.0      # logits clipped to [-100, 100] before the sigmoid
MIN_SCORE_THRESH = 0.5             # sigmoid score kept when >= 0.5
# box format XYWH (reverse_output_order: true): x_center, y_center, w, h
# NonMaxSuppressionCalculator options
NMS_MIN_SUPPRESSION_THRESHOLD = 0.3   # candidates: IoU > 0.3 with the best remaining box
# DetectionsToRectsCalculator options (palm_detection_detection_to_roi)
ROTATION_START_KEYPOINT = 0        # wrist centre
ROTATION_END_KEYPOINT = 2          # middle finger MCP
TARGET_ANGLE = math.pi * 90.0 / 180.0
# RectTransformationCalculator options (hand region from the palm)
REGION_SCALE_X = REGION_SCALE_Y = 2.6
REGION_SHIFT_X, REGION_SHIFT_Y = 0.0, -0.5
REGION_SQUARE_LONG = True

KEYPOINT_NAMES = ("wrist", "index_mcp", "middle_mcp", "ring_mcp", "little_mcp", "thumb_base", "thumb_mcp")

# ------------------------------------------------------------------------------------
# Op kernels (numpy). Activations are NHWC arrays with the batch dimension (1).
# ------------------------------------------------------------------------------------


def tflite_same_padding(size, kernel, stride, dilation):
    """tensorflow/lite/kernels/padding.h: out = ceil(size / stride); total padding
    (out - 1) * stride + (kernel - 1) * dilation + 1 - size (at least 0); the smaller half
    before, the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def window_pads(padding, h, w, kh, kw, sh, sw, dh=1, dw=1):
    if padding == "VALID":
        return (0, 0, 0, 0)
    pt, pb = tflite_same_padding(h, kh, sh, dh)
    pl, pr = tflite_same_padding(w, kw, sw, dw)
    return (pt, pb, pl, pr)


def _taps(xp, kh, kw, sh, sw, dh, dw, oh, ow):
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def _out_size(padded, kernel, stride, dilation):
    return (padded - ((kernel - 1) * dilation + 1)) // stride + 1


def activation(x, name):
    if name == "NONE":
        return x
    if name == "RELU":
        return np.maximum(x, 0)
    if name == "RELU6":
        return np.clip(x, 0, 6)
    if name == "RELU_N1_TO_1":
        return np.clip(x, -1, 1)
    raise ValueError("activation %s" % name)


def conv2d(x, w, b, stride, pads, dilation=(1, 1), act="NONE"):
    """x [1, H, W, I], w [O, KH, KW, I] (TFLite OHWI), b [O] or None."""
    o, kh, kw, _ = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pads
    xp = np.pad(x[0], ((pt, pb), (pl, pr), (0, 0)))
    oh, ow = _out_size(xp.shape[0], kh, sh, dh), _out_size(xp.shape[1], kw, sw, dw)
    out = np.zeros((oh * ow, o), x.dtype)
    for i, j, patch in _taps(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        out += patch.reshape(oh * ow, -1) @ w[:, i, j, :].T
    out = out.reshape(oh, ow, o)
    if b is not None:
        out += b
    return activation(out, act)[None]


def depthwise_conv2d(x, w, b, stride, pads, dilation=(1, 1), act="NONE"):
    """x [1, H, W, C], w [1, KH, KW, C] (depth multiplier 1), b [C] or None."""
    _, kh, kw, c = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pads
    xp = np.pad(x[0], ((pt, pb), (pl, pr), (0, 0)))
    oh, ow = _out_size(xp.shape[0], kh, sh, dh), _out_size(xp.shape[1], kw, sw, dw)
    out = np.zeros((oh, ow, c), x.dtype)
    for i, j, patch in _taps(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        out += patch * w[0, i, j, :]
    if b is not None:
        out += b
    return activation(out, act)[None]


def prelu(x, alpha):
    """f(x) = x for x >= 0, alpha * x otherwise; alpha per channel (broadcast on the last axis)."""
    return np.where(x >= 0, x, x * alpha.reshape(-1))


def max_pool2d(x, filt, stride, pads, act="NONE"):
    """Max over the window's positions inside the input (padding never wins)."""
    (fh, fw), (sh, sw), (pt, pb, pl, pr) = filt, stride, pads
    xp = np.pad(x[0], ((pt, pb), (pl, pr), (0, 0)), constant_values=-np.inf)
    oh, ow = _out_size(xp.shape[0], fh, sh, 1), _out_size(xp.shape[1], fw, sw, 1)
    out = np.full((oh, ow, x.shape[3]), -np.inf, x.dtype)
    for _, _, patch in _taps(xp, fh, fw, sh, sw, 1, 1, oh, ow):
        out = np.maximum(out, patch)
    return activation(out, act)[None]


def pad(x, paddings):
    return np.pad(x, [tuple(p) for p in paddings])


def resize_bilinear(x, size, align_corners, half_pixel_centers):
    """TFLite RESIZE_BILINEAR (kernels/internal/reference: ComputeInterpolationValues):
    scale = in / out ((in - 1) / (out - 1) with align_corners), source coordinate
    (d + 0.5) * scale - 0.5 with half_pixel_centers else d * scale; lower index
    max(floor, 0), upper min(ceil, in - 1), weights from the source coordinate minus the
    lower index. The scale is a float32 in TFLite, so it is here."""
    _, h, w, _ = x.shape
    oh, ow = size

    def axis(out, inn):
        if align_corners and out > 1:
            scale = np.float32(inn - 1) / np.float32(out - 1)
        else:
            scale = np.float32(inn) / np.float32(out)
        d = np.arange(out, dtype=np.float64)
        v = (d + 0.5) * float(scale) - 0.5 if half_pixel_centers else d * float(scale)
        lo = np.maximum(np.floor(v), 0).astype(np.int64)
        hi = np.minimum(np.ceil(v), inn - 1).astype(np.int64)
        return lo, hi, (v - lo).astype(x.dtype)

    ylo, yhi, fy = axis(oh, h)
    xlo, xhi, fx = axis(ow, w)
    img = x[0]
    top = img[ylo][:, xlo] * (1 - fx)[None, :, None] + img[ylo][:, xhi] * fx[None, :, None]
    bot = img[yhi][:, xlo] * (1 - fx)[None, :, None] + img[yhi][:, xhi] * fx[None, :, None]
    return (top * (1 - fy)[:, None, None] + bot * fy[:, None, None])[None]


def concatenation(xs, axis, act="NONE"):
    return activation(np.concatenate(xs, axis=axis), act)


# ------------------------------------------------------------------------------------
# Running the .tflite directly
# ------------------------------------------------------------------------------------

_ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


class TFLiteGraph(object):
    """The model's operators, interpreted here from the flatbuffer (not from the converter's
    graph): each op's kind, options and tensors, constants as numpy arrays."""

    def __init__(self, path, dtype=np.float64):
        with open(path, "rb") as f:
            self.raw = f.read()
        self.model = convert_palm.TFLiteModel(self.raw)
        self.dtype = dtype
        self.path = path

    def constant(self, index):
        t = self.model.tensors[index]
        b = self.model.buffers[t.buffer]
        if b.size == 0:
            return None
        data = self.raw[b.offset:b.offset + b.size]
        kind = {0: "<f4", 1: "<f2", 2: "<i4"}[t.type]
        return np.frombuffer(data, kind).reshape(t.shape)

    def ops(self):
        """[(kind, input tensor indices, output tensor index, options dict)] in execution order."""
        out = []
        for op in self.model.ops:
            o = op.options
            opt = {}
            if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                dw = op.name == "DEPTHWISE_CONV_2D"
                opt = dict(padding=("SAME", "VALID")[o.scalar(0, "b", 0, "padding")],
                           stride=(o.scalar(2, "i", 0, "stride_h"), o.scalar(1, "i", 0, "stride_w")),
                           act=_ACT[o.scalar(4 if dw else 3, "b", 0, "act")],
                           dilation=(o.scalar(6 if dw else 5, "i", 1, "dh"), o.scalar(5 if dw else 4, "i", 1, "dw")))
                if dw:
                    opt["depth_multiplier"] = o.scalar(3, "i", 0, "depth_multiplier")
            elif op.name == "MAX_POOL_2D":
                opt = dict(padding=("SAME", "VALID")[o.scalar(0, "b", 0, "padding")],
                           stride=(o.scalar(2, "i", 0, "sh"), o.scalar(1, "i", 0, "sw")),
                           filter=(o.scalar(4, "i", 0, "fh"), o.scalar(3, "i", 0, "fw")),
                           act=_ACT[o.scalar(5, "b", 0, "act")])
            elif op.name == "ADD":
                opt = dict(act=_ACT[o.scalar(0, "b", 0, "act")])
            elif op.name == "CONCATENATION":
                opt = dict(axis=o.scalar(0, "i", 0, "axis"), act=_ACT[o.scalar(1, "b", 0, "act")])
            elif op.name == "RESIZE_BILINEAR":
                opt = dict(align_corners=bool(o.scalar(2, "B", 0, "ac")), half_pixel_centers=bool(o.scalar(3, "B", 0, "hp")))
            out.append((op.name, [i for i in op.inputs if i >= 0], op.outputs[0], opt))
        return out

    def run(self, image, keep=False):
        """image [1, 192, 192, 3] -> (regressors [2016, 18], logits [2016]); keep: also
        every tensor computed, {tensor index: array}."""
        m = self.model
        values = {m.inputs[0]: np.asarray(image, self.dtype).reshape(m.tensors[m.inputs[0]].shape)}

        def get(i):
            if i in values:
                return values[i]
            c = self.constant(i)
            if c is None:
                raise ValueError("tensor %d used before it is made" % i)
            return c

        for kind, ins, out, opt in self.ops():
            values[out] = self.apply(kind, [get(i) for i in ins], m.tensors[out].shape, opt)
        outs = [values[i] for i in m.outputs]
        reg = [o for o in outs if o.shape[-1] == NUM_COORDS][0].reshape(-1, NUM_COORDS)
        logit = [o for o in outs if o.shape[-1] == 1][0].reshape(-1)
        return (reg, logit, values) if keep else (reg, logit)

    def apply(self, kind, args, out_shape, opt):
        dt = self.dtype
        if kind == "DEQUANTIZE":
            return args[0].astype(np.float32).astype(dt)   # float16 -> float32 exactly
        x = args[0]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = args[1].astype(dt)
            b = args[2].astype(dt) if len(args) > 2 else None
            _, kh, kw, _ = w.shape
            pads = window_pads(opt["padding"], x.shape[1], x.shape[2], kh, kw, *opt["stride"], *opt["dilation"])
            if kind == "CONV_2D":
                return conv2d(x, w, b, opt["stride"], pads, opt["dilation"], opt["act"])
            if opt["depth_multiplier"] != 1:
                raise ValueError("depth multiplier %d" % opt["depth_multiplier"])
            return depthwise_conv2d(x, w, b, opt["stride"], pads, opt["dilation"], opt["act"])
        if kind == "PRELU":
            return prelu(x, args[1].astype(dt))
        if kind == "ADD":
            return activation(x + args[1], opt["act"])
        if kind == "MAX_POOL_2D":
            pads = window_pads(opt["padding"], x.shape[1], x.shape[2], *opt["filter"], *opt["stride"])
            return max_pool2d(x, opt["filter"], opt["stride"], pads, opt["act"])
        if kind == "PAD":
            return pad(x, np.asarray(args[1]).reshape(-1, 2))
        if kind == "RESIZE_BILINEAR":
            return resize_bilinear(x, tuple(int(v) for v in args[1]), opt["align_corners"], opt["half_pixel_centers"])
        if kind == "RESHAPE":
            return x.reshape(out_shape)
        if kind == "CONCATENATION":
            return concatenation(args, opt["axis"] % x.ndim, opt["act"])
        raise ValueError("op %s" % kind)


# ------------------------------------------------------------------------------------
# Running the converter's output (weights/PALM_FORMAT.md) with the same kernels
# ------------------------------------------------------------------------------------

def load_converted(path):
    import st_numpy
    tensors, meta = st_numpy.load(path)
    return tensors, meta, json.loads(meta["graph"])


def run_converted(path_or_loaded, image, dtype=np.float64):
    tensors, meta, graph = load_converted(path_or_loaded) if isinstance(path_or_loaded, str) else path_or_loaded
    values = {graph["input"]: np.asarray(image, dtype).reshape(graph["values"][graph["input"]]["shape"])}

    def w(name):
        return None if name is None else tensors[name].astype(dtype)

    for op in graph["ops"]:
        x = [values[i] for i in op["inputs"]]
        kind = op["op"]
        if kind == "CONV_2D":
            y = conv2d(x[0], w(op["filter"]), w(op["bias"]), op["stride"], op["pad"], op["dilation"], op["activation"])
        elif kind == "DEPTHWISE_CONV_2D":
            y = depthwise_conv2d(x[0], w(op["filter"]), w(op["bias"]), op["stride"], op["pad"], op["dilation"], op["activation"])
        elif kind == "PRELU":
            y = prelu(x[0], w(op["alpha"]))
        elif kind == "ADD":
            y = activation(x[0] + x[1], op["activation"])
        elif kind == "MAX_POOL_2D":
            y = max_pool2d(x[0], op["filter"], op["stride"], op["pad"], op["activation"])
        elif kind == "PAD":
            y = pad(x[0], op["paddings"])
        elif kind == "RESIZE_BILINEAR":
            y = resize_bilinear(x[0], op["size"], op["align_corners"], op["half_pixel_centers"])
        elif kind == "RESHAPE":
            y = x[0].reshape(op["shape"])
        elif kind == "CONCATENATION":
            y = concatenation(x, op["axis"], op["activation"])
        else:
            raise ValueError("op %s" % kind)
        if list(y.shape) != graph["values"][op["outputs"][0]]["shape"]:
            raise ValueError("op %d (%s) made %s, the graph says %s" % (op["index"], kind, y.shape, graph["values"][op["outputs"][0]]["shape"]))
        values[op["outputs"][0]] = y
    reg = values[graph["outputs"]["regressors"]].reshape(-1, NUM_COORDS)
    logit = values[graph["outputs"]["scores"]].reshape(-1)
    return reg, logit


# ------------------------------------------------------------------------------------
# MediaPipe's pre-processing: the letterboxed 192x192 RGB input in [0, 1]
# ------------------------------------------------------------------------------------

LETTERBOX_MODES = ("resize", "mediapipe-cpu")


def letterbox(rgb, mode="resize"):
    """The letterboxed detector input: the image scaled so that its long side is 192 (aspect
    kept), centred on a zero 192x192 tensor, RGB value / 255 (ImageToTensorCalculator with
    keep_aspect_ratio, BORDER_ZERO, output range 0..1). Returns (tensor [1, 192, 192, 3]
    float32, padding (left, top, right, bottom) as fractions of the tensor, for
    DetectionLetterboxRemovalCalculator).

    mode "resize" (default): cv2.resize INTER_LINEAR of the uint8 image to
      round(w * s) x round(h * s), s = 192 / max(w, h), pasted at ((192 - w')//2,
      (192 - h')//2). Pixel centres map onto pixel centres, as MediaPipe's GPU path samples
      (the @mediapipe/hands web solution runs there) and as handgraph's image.hpp resize
      (equal to cv2.resize) does.
    mode "mediapipe-cpu": MediaPipe's OpenCV converter exactly: the region (the image
      widened to a square on its long side about its centre, PadRoi) has its corners mapped
      onto the tensor's corners (cv::getPerspectiveTransform) and the image is resampled
      with cv::warpPerspective (INTER_LINEAR, zero border) in uint8; pixel index 0 maps to
      0, so at 256 -> 192 the samples sit 1/6 source pixel up-left of the centred ones."""
    import cv2
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb)
    if mode == "resize":
        s = INPUT_SIZE / float(max(w, h))
        nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
        left, top = (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2
        out = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        out[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        padding = (left / INPUT_SIZE, top / INPUT_SIZE, (INPUT_SIZE - nw - left) / INPUT_SIZE, (INPUT_SIZE - nh - top) / INPUT_SIZE)
    elif mode == "mediapipe-cpu":
        side = float(max(w, h))
        cx, cy = 0.5 * w, 0.5 * h
        hpad = (1.0 - (w / side)) / 2.0 if w < h else 0.0   # PadRoi: tensor aspect 1
        vpad = (1.0 - (h / side)) / 2.0 if h < w else 0.0
        x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
        # cv::boxPoints order for rotation 0: bottom-left, top-left, top-right, bottom-right
        src = np.float32([[x0, y1], [x0, y0], [x1, y0], [x1, y1]])
        dst = np.float32([[0, INPUT_SIZE], [0, 0], [INPUT_SIZE, 0], [INPUT_SIZE, INPUT_SIZE]])
        m = cv2.getPerspectiveTransform(src, dst)
        out = cv2.warpPerspective(rgb, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        padding = (hpad, vpad, hpad, vpad)
    else:
        raise ValueError("letterbox mode %r" % mode)
    scale = np.float32((RANGE_MAX - RANGE_MIN) / 255.0)
    tensor = out.astype(np.float32) * scale + np.float32(RANGE_MIN)
    return tensor[None], padding


# ------------------------------------------------------------------------------------
# MediaPipe's post-processing
# ------------------------------------------------------------------------------------

def ssd_anchors(o=ANCHORS):
    """SsdAnchorsCalculator: [2016, 4] (x_center, y_center, w, h) in [0, 1]. Consecutive
    layers of one stride share a grid; each layer adds one anchor per aspect ratio and one
    at the interpolated scale sqrt(scale_i * scale_i+1) (1.0 after the last layer); the
    scale of layer i is min + (max - min) * i / (num_layers - 1). Fixed anchor size: w = h = 1."""
    n, strides = o["num_layers"], o["strides"]

    def scale(i):
        return (o["min_scale"] + o["max_scale"]) / 2 if n == 1 else o["min_scale"] + (o["max_scale"] - o["min_scale"]) * i / (n - 1)

    rows, layer = [], 0
    while layer < n:
        sizes, last = [], layer
        while last < len(strides) and strides[last] == strides[layer]:
            s = scale(last)
            for ar in o["aspect_ratios"]:
                sizes.append((s * math.sqrt(ar), s / math.sqrt(ar)))
            if o["interpolated_scale_aspect_ratio"] > 0:
                s2 = 1.0 if last == len(strides) - 1 else scale(last + 1)
                si, ar = math.sqrt(s * s2), o["interpolated_scale_aspect_ratio"]
                sizes.append((si * math.sqrt(ar), si / math.sqrt(ar)))
            last += 1
        fh = int(math.ceil(o["input_h"] / strides[layer]))
        fw = int(math.ceil(o["input_w"] / strides[layer]))
        for y in range(fh):
            for x in range(fw):
                for aw, ah in sizes:
                    w_, h_ = (1.0, 1.0) if o["fixed_anchor_size"] else (aw, ah)
                    rows.append(((x + o["offset_x"]) / fw, (y + o["offset_y"]) / fh, w_, h_))
        layer = last
    return np.array(rows, np.float64)


def sigmoid_scores(logits):
    """TensorsToDetectionsCalculator: clip to [-100, 100], then 1 / (1 + exp(-x))."""
    x = np.clip(np.asarray(logits, np.float64), -SCORE_CLIPPING_THRESH, SCORE_CLIPPING_THRESH)
    return 1.0 / (1.0 + np.exp(-x))


def decode_boxes(reg, anchors):
    """TensorsToDetectionsCalculator::DecodeBoxes, XYWH, no exponential: centre
    = raw / 192 * anchor size + anchor centre, size = raw / 192 * anchor size; keypoints
    likewise. Returns boxes [N, 4] (xmin, ymin, width, height) and keypoints [N, 7, 2],
    relative to the 192x192 tensor."""
    reg = np.asarray(reg, np.float64)
    ax, ay, aw, ah = anchors.T
    o = BOX_COORD_OFFSET
    xc = reg[:, o] / X_SCALE * aw + ax
    yc = reg[:, o + 1] / Y_SCALE * ah + ay
    w = reg[:, o + 2] / W_SCALE * aw
    h = reg[:, o + 3] / H_SCALE * ah
    boxes = np.stack([xc - w / 2, yc - h / 2, w, h], axis=1)
    kp = reg[:, KEYPOINT_COORD_OFFSET:KEYPOINT_COORD_OFFSET + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2)
    kx = kp[:, :, 0] / X_SCALE * aw[:, None] + ax[:, None]
    ky = kp[:, :, 1] / Y_SCALE * ah[:, None] + ay[:, None]
    return boxes, np.stack([kx, ky], axis=2)


def detections(reg, logits, anchors):
    """Boxes kept by ConvertToDetections: score >= 0.5, width and height >= 0 and not NaN.
    [dict(anchor, score, box (xmin, ymin, w, h), keypoints [7, 2])], in anchor order."""
    boxes, kps = decode_boxes(reg, anchors)
    scores = sigmoid_scores(logits)
    out = []
    for i in range(len(scores)):
        if not scores[i] >= MIN_SCORE_THRESH:
            continue
        w, h = boxes[i, 2], boxes[i, 3]
        if not (w >= 0 and h >= 0):
            continue
        out.append(dict(anchor=i, score=float(scores[i]), box=boxes[i].copy(), keypoints=kps[i].copy()))
    return out


def iou(a, b):
    """OverlapSimilarity, INTERSECTION_OVER_UNION, boxes (xmin, ymin, w, h)."""
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    if bx1 > ax2 or bx2 < ax1 or by1 > ay2 or by2 < ay1:   # Rectangle::Intersects
        return 0.0
    iw, ih = min(ax2, bx2) - max(ax1, bx1), min(ay2, by2) - max(ay1, by1)
    inter = max(iw, 0.0) * max(ih, 0.0)
    norm = a[2] * a[3] + b[2] * b[3] - inter
    return inter / norm if norm > 0 else 0.0


def weighted_nms(dets):
    """NonMaxSuppressionCalculator, WEIGHTED: by decreasing score (ties: lower anchor
    first; MediaPipe's std::sort leaves ties unspecified), the best remaining detection
    and every remaining one with IoU > 0.3 with it (itself included) are merged: box
    corners and keypoints averaged with the scores as weights, score the best one's.
    Stops when a round removes nothing. No limit on the number of detections."""
    order = sorted(range(len(dets)), key=lambda k: (-dets[k]["score"], dets[k]["anchor"]))
    remaining = [dets[k] for k in order]
    out = []
    while remaining:
        best = remaining[0]
        cand = [d for d in remaining if iou(d["box"], best["box"]) > NMS_MIN_SUPPRESSION_THRESHOLD]
        rest = [d for d in remaining if not iou(d["box"], best["box"]) > NMS_MIN_SUPPRESSION_THRESHOLD]
        merged = dict(best, merged=len(cand))
        if cand:
            s = np.array([d["score"] for d in cand])
            corners = np.array([[d["box"][0], d["box"][1], d["box"][0] + d["box"][2], d["box"][1] + d["box"][3]] for d in cand])
            c = (corners * s[:, None]).sum(0) / s.sum()
            merged["box"] = np.array([c[0], c[1], c[2] - c[0], c[3] - c[1]])
            merged["keypoints"] = (np.array([d["keypoints"] for d in cand]) * s[:, None, None]).sum(0) / s.sum()
        out.append(merged)
        if len(rest) == len(remaining):
            break
        remaining = rest
    return out


def remove_letterbox(det, padding):
    """DetectionLetterboxRemovalCalculator: tensor-relative -> image-relative coordinates."""
    left, top, right, bottom = padding
    sx, sy = 1.0 - left - right, 1.0 - top - bottom
    b = det["box"]
    out = dict(det)
    out["box"] = np.array([(b[0] - left) / sx, (b[1] - top) / sy, b[2] / sx, b[3] / sy])
    kp = det["keypoints"]
    out["keypoints"] = np.stack([(kp[:, 0] - left) / sx, (kp[:, 1] - top) / sy], axis=1)
    return out


def normalize_radians(a):
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def hand_region(det, width, height):
    """The hand region MediaPipe's hand tracking crops from a palm detection:
    DetectionsToRectsCalculator (rect = the box's centre and size; rotation =
    90 deg - atan2(-(y2 - y0), x2 - x0) from keypoint 0 (wrist) to 2 (middle MCP), in
    pixels) then RectTransformationCalculator (centre shifted by -0.5 of the height along
    the rotated y axis, i.e. towards the fingers; square on the long side in pixels;
    scaled 2.6). Image-relative detection in, pixels out: centre, side (square), rotation
    (radians), the rotated square's 4 corners, and two axis-aligned squares (x, y, side):
    `box` of the same side about the same centre, `box_enclosing` holding the whole
    rotated square (side * (|cos| + |sin|))."""
    b, kp = det["box"], det["keypoints"]
    xc, yc, w, h = b[0] + b[2] / 2, b[1] + b[3] / 2, b[2], b[3]
    x0, y0 = kp[ROTATION_START_KEYPOINT, 0] * width, kp[ROTATION_START_KEYPOINT, 1] * height
    x1, y1 = kp[ROTATION_END_KEYPOINT, 0] * width, kp[ROTATION_END_KEYPOINT, 1] * height
    r = normalize_radians(TARGET_ANGLE - math.atan2(-(y1 - y0), x1 - x0))
    if r == 0.0:
        xc += w * REGION_SHIFT_X
        yc += h * REGION_SHIFT_Y
    else:
        xc += (width * w * REGION_SHIFT_X * math.cos(r) - height * h * REGION_SHIFT_Y * math.sin(r)) / width
        yc += (width * w * REGION_SHIFT_X * math.sin(r) + height * h * REGION_SHIFT_Y * math.cos(r)) / height
    if REGION_SQUARE_LONG:
        long_side = max(w * width, h * height)
        w, h = long_side / width, long_side / height
    w, h = w * REGION_SCALE_X, h * REGION_SCALE_Y
    cx, cy, side = xc * width, yc * height, w * width   # w * width == h * height: a square
    c, s = math.cos(r), math.sin(r)
    corners = [(cx + dx * c - dy * s, cy + dx * s + dy * c)
               for dx, dy in ((-side / 2, -side / 2), (side / 2, -side / 2), (side / 2, side / 2), (-side / 2, side / 2))]
    big = side * (abs(c) + abs(s))
    return dict(center=[cx, cy], side=side, rotation=r, corners=corners,
                box=[cx - side / 2, cy - side / 2, side], box_enclosing=[cx - big / 2, cy - big / 2, big])


def detect(graph_or_run, rgb, anchors=None, mode="resize"):
    """Full pipeline on an RGB uint8 image: dict(input, regressors, logits, raw detections
    (tensor-relative, before NMS), hands (after NMS, image-relative, with region))."""
    anchors = ssd_anchors() if anchors is None else anchors
    tensor, padding = letterbox(rgb, mode)
    run = graph_or_run.run if hasattr(graph_or_run, "run") else graph_or_run
    reg, logits = run(tensor)[:2]
    raw = detections(reg, logits, anchors)
    h, w = rgb.shape[:2]
    hands = []
    for d in weighted_nms(raw):
        d = remove_letterbox(d, padding)
        d["region"] = hand_region(d, w, h)
        hands.append(d)
    return dict(input=tensor, padding=padding, regressors=reg, logits=logits, raw=raw, hands=hands)


def hand_json(d, width, height):
    b = d["box"]
    return dict(score=d["score"], anchor=d["anchor"], merged=d.get("merged", 1),
                box_relative=[float(v) for v in b],
                box_px=[float(b[0] * width), float(b[1] * height), float(b[2] * width), float(b[3] * height)],
                keypoints_px=[[float(x * width), float(y * height)] for x, y in d["keypoints"]],
                region=dict(center=[float(v) for v in d["region"]["center"]], side=float(d["region"]["side"]),
                            rotation=float(d["region"]["rotation"]),
                            corners=[[float(x), float(y)] for x, y in d["region"]["corners"]],
                            box=[float(v) for v in d["region"]["box"]],
                            box_enclosing=[float(v) for v in d["region"]["box_enclosing"]]))


def read_rgb(path):
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit("palm_reference: cannot read image %s" % path)
    return np.ascontiguousarray(bgr[:, :, ::-1])


# ------------------------------------------------------------------------------------
# Op-by-op cross-check against independent implementations (PyTorch, cv2)
# ------------------------------------------------------------------------------------

def crosscheck(graph, tensor):
    """Run the reference keeping every tensor; recompute each op's output from the same
    inputs with PyTorch (conv2d, grouped conv2d, prelu, max_pool2d, F.pad, interpolate
    bilinear half-pixel, cat) in float64, and the resizes also with cv2.resize (float32).
    Returns [(op index, kind, max |diff|, max |value|)]."""
    import torch
    import torch.nn.functional as F
    reg, logit, values = graph.run(tensor, keep=True)
    m = graph.model
    rows = []

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float64)))

    def nchw(a):
        return t(a).permute(0, 3, 1, 2)

    def back(a):
        return a.permute(0, 2, 3, 1).numpy()

    def get(i):
        return values[i] if i in values else graph.constant(i)

    for k, (kind, ins, out, opt) in enumerate(graph.ops()):
        if kind == "DEQUANTIZE":
            continue
        args = [get(i) for i in ins]
        x = args[0]
        ref = values[out]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = np.asarray(args[1], np.float64)
            b = t(args[2]) if len(args) > 2 else None
            _, kh, kw, _ = w.shape
            # SAME padding again, written as TensorFlow documents it (pad_along = max((ceil(in/s)-1)*s + k - in, 0))
            pads = []
            for size, kk, s in ((x.shape[1], kh, opt["stride"][0]), (x.shape[2], kw, opt["stride"][1])):
                along = max((math.ceil(size / s) - 1) * s + kk - size, 0) if opt["padding"] == "SAME" else 0
                pads.append((along // 2, along - along // 2))
            xp = F.pad(nchw(x), (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
            if kind == "CONV_2D":
                y = F.conv2d(xp, t(w).permute(0, 3, 1, 2), b, stride=opt["stride"], dilation=opt["dilation"])
            else:
                y = F.conv2d(xp, t(w).permute(3, 0, 1, 2), b, stride=opt["stride"], dilation=opt["dilation"], groups=w.shape[3])
            other = back(y)
        elif kind == "PRELU":
            other = back(F.prelu(nchw(x), t(args[1]).reshape(-1)))
        elif kind == "ADD":
            other = (t(x) + t(args[1])).numpy()
        elif kind == "MAX_POOL_2D":
            fh, fw = opt["filter"]
            pads = []
            for size, kk, s in ((x.shape[1], fh, opt["stride"][0]), (x.shape[2], fw, opt["stride"][1])):
                along = max((math.ceil(size / s) - 1) * s + kk - size, 0) if opt["padding"] == "SAME" else 0
                pads.append((along // 2, along - along // 2))
            xp = F.pad(nchw(x), (pads[1][0], pads[1][1], pads[0][0], pads[0][1]), value=-math.inf)
            other = back(F.max_pool2d(xp, opt["filter"], opt["stride"]))
        elif kind == "PAD":
            p = np.asarray(args[1]).reshape(-1, 2)
            other = back(F.pad(nchw(x), (int(p[2, 0]), int(p[2, 1]), int(p[1, 0]), int(p[1, 1]), int(p[3, 0]), int(p[3, 1]))))
        elif kind == "RESIZE_BILINEAR":
            size = tuple(int(v) for v in args[1])
            assert opt["half_pixel_centers"] and not opt["align_corners"]
            other = back(F.interpolate(nchw(x), size=size, mode="bilinear", align_corners=False))
            import cv2
            cv = cv2.resize(np.asarray(x[0], np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)[None]
            rows.append((k, kind + " (cv2)", float(np.abs(cv - ref).max()), float(np.abs(ref).max())))
        elif kind == "RESHAPE":
            other = t(x).reshape(m.tensors[out].shape).numpy()
        elif kind == "CONCATENATION":
            other = torch.cat([t(a) for a in args], dim=opt["axis"] % x.ndim).numpy()
        else:
            raise ValueError(kind)
        rows.append((k, kind, float(np.abs(other - ref).max()), float(np.abs(ref).max())))
    return rows


# ------------------------------------------------------------------------------------
# The real-world test set (583 crops)
# ------------------------------------------------------------------------------------

def realworld(graph, root, limit=None, progress=False, mode="resize"):
    """Detect on each crop; count crops with a palm (score >= 0.5), and how often the
    ground-truth 2D joints (pose_gt.mat projected with params.mat into the crop) fall
    inside the hand region (rotated square) and the two axis-aligned boxes."""
    import scipy.io as sio
    params = sio.loadmat(os.path.join(root, "params.mat"))
    gt = sio.loadmat(os.path.join(root, "pose_gt.mat"))["pose_gt"]
    paths = [str(p).strip() for p in params["image_path"]]
    n = len(paths) if not limit else min(limit, len(paths))
    anchors = ssd_anchors()
    per = []
    for i in range(n):
        rgb = read_rgb(os.path.join(root, paths[i]))
        r = detect(graph, rgb, anchors, mode)
        fx, fy, u0, v0 = params["cam_param"][i]
        bx, by, bw, bh = params["bbox"][i].astype(np.float64)
        xyz = gt[i].astype(np.float64)
        u = (fx * xyz[:, 0] / xyz[:, 2] + u0 - bx) * rgb.shape[1] / bw
        v = (fy * xyz[:, 1] / xyz[:, 2] + v0 - by) * rgb.shape[0] / bh
        entry = dict(image=paths[i], hands=len(r["hands"]), max_raw_score=float(sigmoid_scores(r["logits"]).max()))
        if r["hands"]:
            best = r["hands"][0]
            reg = best["region"]
            c, s = math.cos(reg["rotation"]), math.sin(reg["rotation"])
            du, dv = u - reg["center"][0], v - reg["center"][1]
            lu, lv = du * c + dv * s, -du * s + dv * c          # joint in the region's frame
            inside_region = (np.abs(lu) <= reg["side"] / 2) & (np.abs(lv) <= reg["side"] / 2)

            def inside(box):
                return (u >= box[0]) & (u <= box[0] + box[2]) & (v >= box[1]) & (v <= box[1] + box[2])
            entry.update(score=best["score"], region_joints=int(inside_region.sum()),
                         box_joints=int(inside(reg["box"]).sum()), enclosing_joints=int(inside(reg["box_enclosing"]).sum()),
                         wrist_in_region=bool(inside_region[0]), middle_mcp_in_region=bool(inside_region[9]))
        per.append(entry)
        if progress and (i + 1) % 50 == 0:
            sys.stderr.write("  %d/%d, found so far %d\n" % (i + 1, n, sum(1 for e in per if e["hands"])))
    found = [e for e in per if e["hands"]]
    summary = dict(model=os.path.basename(graph.path), letterbox=mode, crops=n, found=len(found),
                   missed=[e["image"] for e in per if not e["hands"]],
                   wrist_in_region=sum(e["wrist_in_region"] for e in found),
                   middle_mcp_in_region=sum(e["middle_mcp_in_region"] for e in found),
                   all_joints_in_region=sum(e["region_joints"] == 21 for e in found),
                   joints95_in_box=sum(e["box_joints"] >= 20 for e in found),
                   joints95_in_enclosing=sum(e["enclosing_joints"] >= 20 for e in found),
                   joint_fraction_region=float(np.mean([e["region_joints"] / 21 for e in found])) if found else 0.0,
                   joint_fraction_box=float(np.mean([e["box_joints"] / 21 for e in found])) if found else 0.0,
                   joint_fraction_enclosing=float(np.mean([e["enclosing_joints"] / 21 for e in found])) if found else 0.0)
    return summary, per


# ------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------

def dump(graph, images, out_st, out_json, mode="resize"):
    """Raw outputs and decoded detections for C++ parity tests: per image k (in argument
    order) `image<k>.input` F32 [1, 192, 192, 3] (the letterboxed tensor),
    `image<k>.regressors` F64 [2016, 18], `image<k>.logits` F64 [2016], `image<k>.scores`
    F64 [2016] (clipped sigmoid), `image<k>.hands` F64 [D, 19] (score, box xmin ymin w h
    image-relative, 7 keypoints x y image-relative), `image<k>.regions` F64 [D, 7]
    (centre x y, side, rotation in pixels/radians, axis-aligned box x y side);
    `anchors` F64 [2016, 4]. The JSON has the same detections, readable."""
    import st_numpy
    arrays, js = {"anchors": ssd_anchors()}, []
    for k, path in enumerate(images):
        rgb = read_rgb(path)
        r = detect(graph, rgb, mode=mode)
        h, w = rgb.shape[:2]
        arrays["image%d.input" % k] = r["input"].astype(np.float32)
        arrays["image%d.regressors" % k] = np.asarray(r["regressors"], np.float64)
        arrays["image%d.logits" % k] = np.asarray(r["logits"], np.float64)
        arrays["image%d.scores" % k] = sigmoid_scores(r["logits"])
        rows = [[d["score"], *d["box"], *d["keypoints"].reshape(-1)] for d in r["hands"]]
        arrays["image%d.hands" % k] = np.array(rows, np.float64).reshape(-1, 19)
        regs = [[*d["region"]["center"], d["region"]["side"], d["region"]["rotation"], *d["region"]["box"]] for d in r["hands"]]
        arrays["image%d.regions" % k] = np.array(regs, np.float64).reshape(-1, 7)
        js.append(dict(image=path, width=w, height=h, padding=list(r["padding"]), raw_detections=len(r["raw"]),
                       hands=[hand_json(d, w, h) for d in r["hands"]]))
    meta = {"format": "handgraph-palm-reference", "model": os.path.basename(graph.path), "letterbox": mode,
            "dtype": np.dtype(graph.dtype).name, "images": json.dumps(images)}
    if out_st:
        st_numpy.save(out_st, arrays, meta)
    if out_json:
        with open(out_json, "w") as f:
            json.dump(dict(model=os.path.basename(graph.path), keypoints=KEYPOINT_NAMES, images=js), f, indent=1)
    return js


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="palm_detection_full.tflite or palm_detection_lite.tflite")
    ap.add_argument("images", nargs="*")
    ap.add_argument("--dump", help="safetensors file of raw outputs and detections")
    ap.add_argument("--json", help="JSON file of detections (or of the --realworld summary)")
    ap.add_argument("--realworld", metavar="DIR", help="real_world_testset folder (params.mat, pose_gt.mat, images/)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--crosscheck", metavar="IMAGE", help="op-by-op check against PyTorch / cv2 on this image")
    ap.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    ap.add_argument("--letterbox", choices=LETTERBOX_MODES, default="resize",
                    help="resize (default): centred cv2.resize; mediapipe-cpu: MediaPipe's OpenCV warp")
    args = ap.parse_args(argv)
    graph = TFLiteGraph(args.model, np.float32 if args.float32 else np.float64)
    if args.crosscheck:
        tensor, _ = letterbox(read_rgb(args.crosscheck), args.letterbox)
        worst = {}
        for k, kind, diff, scale in crosscheck(graph, tensor):
            rel = diff / max(scale, 1e-30)
            if rel >= worst.get(kind, (0, -1))[1]:
                worst[kind] = (k, rel, diff)
        for kind, (k, rel, diff) in sorted(worst.items()):
            print("%-24s worst op %3d: max |diff| %.3g (%.3g of the output's max |value|)" % (kind, k, diff, rel))
        return 0
    if args.realworld:
        summary, per = realworld(graph, args.realworld, args.limit, progress=True, mode=args.letterbox)
        print(json.dumps(summary, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(dict(summary=summary, crops=per), f, indent=1)
        return 0
    if not args.images:
        ap.error("give images, --realworld or --crosscheck")
    for im in dump(graph, args.images, args.dump, args.json, args.letterbox):
        print("%s: %d hand(s)%s" % (im["image"], len(im["hands"]), "".join(
            "  score %.3f box %s" % (h["score"], [round(v, 1) for v in h["region"]["box"]]) for h in im["hands"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
