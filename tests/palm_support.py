"""The converted palm detector that the Python tests of detection share.

    import palm_support
    palm_support.convert(tflite, out, python=PYTHON, timeout=TIMEOUT)

Runs tools/convert_palm.py on `tflite` (one of ../shared/data/mediapipe/'s models) into
`out` and returns `out`; a failed conversion raises RuntimeError with the converter's
stderr (setUpClass then errors, it does not skip: the model was there).
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_palm.py")


def convert(tflite, out, python=None, timeout=300):
    p = subprocess.run([python or sys.executable, CONVERTER, tflite, "-o", out], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("convert_palm.py failed: " + p.stderr)
    return out
