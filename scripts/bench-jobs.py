"""Times jobs end to end, for scripts/bench.sh: through an mhfs mount, or with the official
Python SDK's generate() (run this with the SDK's virtualenv for the `sdk-*` commands).

usage:
  bench-jobs.py sdk-batch  MOCK_URL N OUT_DIR   N generate() calls in a pool of 8 threads
  bench-jobs.py sdk-one    MOCK_URL OUT_DIR     one generate() call
  bench-jobs.py mhfs-batch MOUNT N TAG          drop N prompt files, wait until all complete
  bench-jobs.py mhfs-one   MOUNT TAG            drop one prompt, wait for its output

Prints one JSON line: {"total": seconds to the last output, "first": seconds to the first}.
Every job is an ai-image-generator prompt of one image; the SDK keeps its default 0.5 s poll
interval and downloads the outputs, as mhfs does.
"""

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def report(t0, first, last):
    print(json.dumps({"total": round(last - t0, 4), "first": round(first - t0, 4)}), flush=True)


def sdk(url, n, out, pool):
    from magic_hour import Client

    client = Client(token="bench", base_url=url)
    os.makedirs(out, exist_ok=True)
    done = []
    lock = threading.Lock()

    def one(i):
        r = client.v1.ai_image_generator.generate(
            image_count=1,
            style={"prompt": f"a lighthouse at dawn, take {i}"},
            download_outputs=True,
            download_directory=out,
        )
        assert r.status == "complete" and r.downloaded_paths, r
        with lock:
            done.append(time.monotonic())

    t0 = time.monotonic()
    with ThreadPoolExecutor(pool) as ex:
        for f in [ex.submit(one, i) for i in range(n)]:
            f.result()
    report(t0, min(done), max(done))


def mhfs(mount, n, tag):
    inbox = os.path.join(mount, "inbox", "ai-image-generator")
    jobs = os.path.join(mount, "jobs")
    names = [f"{tag}-{i}" for i in range(n)]
    first = []
    stop = threading.Event()

    def watch_first():
        # The first output to appear, looked for among the jobs in drop order (they finish
        # roughly in that order), without reading every folder each time.
        while not stop.is_set() and not first:
            for name in names[:64]:
                if os.path.exists(os.path.join(jobs, name, "output.png")):
                    first.append(time.monotonic())
                    return
            time.sleep(0.01)

    t0 = time.monotonic()
    watcher = threading.Thread(target=watch_first)
    watcher.start()
    for name in names:
        with open(os.path.join(inbox, name + ".txt"), "w") as f:
            f.write(f"a lighthouse at dawn, take {name}\n")
    pending = list(names)
    while pending:
        # Statuses in drop order: stop at the first that is not complete yet.
        while pending:
            try:
                with open(os.path.join(jobs, pending[0], "status")) as f:
                    status = f.read().strip()
            except FileNotFoundError:
                status = "missing"
            if status in ("error", "canceled"):
                sys.exit(f"job {pending[0]}: {status}")
            if status != "complete" or not os.path.exists(
                os.path.join(jobs, pending[0], "output.png")
            ):
                break
            pending.pop(0)
        if pending:
            time.sleep(0.02 if n == 1 else 0.1)
    last = time.monotonic()
    stop.set()
    watcher.join()
    report(t0, first[0] if first else last, last)


cmd = sys.argv[1]
if cmd == "sdk-batch":
    sdk(sys.argv[2], int(sys.argv[3]), sys.argv[4], 8)
elif cmd == "sdk-one":
    sdk(sys.argv[2], 1, sys.argv[3], 1)
elif cmd == "mhfs-batch":
    mhfs(sys.argv[2], int(sys.argv[3]), sys.argv[4])
elif cmd == "mhfs-one":
    mhfs(sys.argv[2], 1, sys.argv[3])
else:
    sys.exit(__doc__)
