"""Peak memory of `manage.py import_faces` on a long file (issue #29: 290,664 rows took 3.8 GB when the whole file was
held in memory; the goal is <= 500 MB for 300k rows).

    .venv/bin/python bench/import_memory.py [--rows 300000]

Writes a FER2013-format file of ``--rows`` distinct synthetic 48x48 faces (gzipped, in bench/out/import_memory/), makes
a fresh instance there (SQLite), and runs `/usr/bin/time -v python manage.py import_faces --format fer2013 <file>`;
prints the rows, the seconds and the peak resident memory (time's "Maximum resident set size").
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import time

import numpy as np
from instance import ROOT, instance_env, manage

OUT = ROOT / "bench" / "out" / "import_memory"


def write_file(path, rows: int) -> None:
    """Distinct faces that gzip well: a smooth base face, the row number written into the first pixels."""
    base = np.clip(np.add.outer(np.arange(48), np.arange(48)) * 2 + 40, 0, 255).astype(np.int64)
    tail = " ".join(map(str, base.ravel()[8:]))
    with gzip.open(path, "wt", compresslevel=3) as f:
        f.write("emotion,pixels,Usage\n")
        for i in range(rows):
            head = " ".join(str((i >> (8 * k)) & 255) for k in range(3))  # three pixels: the row's own bytes
            usage = "PublicTest" if i % 10 == 0 else "Training"
            f.write(f"{i % 7},{head} {' '.join(map(str, base.ravel()[3:8]))} {tail},{usage}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    import shutil

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    data = OUT / f"faces-{args.rows}.csv.gz"
    write_file(data, args.rows)
    env = instance_env(OUT, redis_db=10)
    command = manage(env)
    command("migrate", "-v0")
    t0 = time.monotonic()
    done = subprocess.run(
        [
            "/usr/bin/time",
            "-v",
            sys.executable,
            str(ROOT / "manage.py"),
            "import_faces",
            "--format",
            "fer2013",
            str(data),
            "-v0",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.monotonic() - t0
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    result = {
        "rows": args.rows,
        "file_mb": round(data.stat().st_size / 1e6, 1),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "summary": done.stdout.strip().splitlines()[-1],
    }
    print(json.dumps(result, indent=2))
    (OUT / "results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
