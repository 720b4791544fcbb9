import sys

from .cli import main

if __name__ == "__main__":  # not in a child that multiprocessing spawns (npu validate)
    sys.exit(main())
