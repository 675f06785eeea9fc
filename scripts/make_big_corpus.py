"""Write a large real-text corpus for scale tests: the standard library's sources, repeated.

    python scripts/make_big_corpus.py /tmp/big.txt --size-gb 1

Each repetition is the pystdlib corpus (charlm.data.sources) in sorted path order, so the text is
real Python source at any size and needs no network. Prints what it wrote and how fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from charlm.data.sources import pystdlib_files


def main() -> None:
    """Parse the arguments and write the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size-gb", type=float, default=1.0, help="size in GB (1e9 bytes)")
    args = parser.parse_args()
    target, written, began = int(args.size_gb * 1e9), 0, time.perf_counter()
    pieces = [p.read_bytes() for p in pystdlib_files()]
    full = False
    with args.out.open("wb") as out:
        while not full:
            for raw in pieces:
                room = target - written
                if len(raw) > room:  # end on a whole line, never inside a character
                    raw, full = raw[:raw.rfind(b"\n", 0, room) + 1], True
                out.write(raw)
                written += len(raw)
                if full:
                    break
    seconds = time.perf_counter() - began
    print(f"wrote {args.out}: {written:,} bytes from {len(pieces)} stdlib files in "
          f"{seconds:.1f} s")


if __name__ == "__main__":
    main()
