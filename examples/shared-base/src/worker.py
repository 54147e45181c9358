"""A toy worker: squares the numbers it is given."""
import sys

import numpy as np


def main(argv):
    values = np.array([float(a) for a in argv] or [1.0, 2.0, 3.0])
    print(" ".join(f"{v:g}" for v in values**2))


if __name__ == "__main__":
    main(sys.argv[1:])
