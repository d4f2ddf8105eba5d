"""``python -m benchmarks.run [mmadfer bench options]``: the benchmark suite from a source checkout."""
import sys

from mmadfer.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
