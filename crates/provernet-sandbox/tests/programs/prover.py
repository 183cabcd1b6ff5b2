#!/usr/bin/python3
# A prover written for the Python runtime (Debian's python3): threads, a process pool, files in
# /tmp, hashing and compression, and its answer in /job/out.
import hashlib, json, multiprocessing, os, tempfile, threading, zlib

data = open("/job/in/statement", "rb").read()
digests = {}


def work(i):
    digests[i] = hashlib.sha256(data + bytes([i])).hexdigest()


threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with tempfile.NamedTemporaryFile(dir="/tmp") as f:
    f.write(zlib.compress(data))
    f.flush()
with multiprocessing.Pool(2) as pool:
    squares = pool.map(abs, range(-4, 4))
with open("/job/out/proof", "w") as out:
    json.dump({"statement": hashlib.sha256(data).hexdigest(), "threads": len(digests),
               "pool": squares}, out)
