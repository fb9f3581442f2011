"""Speed-up of 4 Python threads over 1 calling estimate on one handgraph.Model (the GIL is
released; each call borrows a context of the model's pool). Usage: /usr/bin/python3
benchmarks/python_threads.py [build-dir]"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "python"))
import numpy as np, handgraph
rng = np.random.RandomState(9)
crops = rng.randint(0, 256, (16, 256, 256, 3)).astype(np.uint8)
kw = dict(crop_box=(100, 50, 220, 220), camera=(600, 600, 320, 240), root=(1, 2, 45))
model = handgraph.Model.random(2, max_contexts=4)
model.estimate(crops[0], **kw)
for rep in range(2):
    t0 = time.perf_counter(); [model.estimate(c, **kw) for c in crops]; t1 = time.perf_counter() - t0
    def work(k):
        for i in range(k, len(crops), 4): model.estimate(crops[i], **kw)
    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    t4 = time.perf_counter() - t0
    print("16 crops, Model.random(2, max_contexts=4), threads=1 contexts: 1 Python thread %.2f s, 4 Python threads %.2f s, speed-up %.2fx (contexts %d, %d CPUs)" % (t1, t4, t1 / t4, model.contexts, os.cpu_count()))
