"""Throughput benchmark; the same as ``charlm bench`` (see ``--help``).

    python scripts/bench.py --data ../shared/data/tinyshakespeare.txt --out bench.json
"""

import sys

from charlm.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
