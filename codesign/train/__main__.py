"""`python -m codesign.train`: the trainer without the codesign CLI (e.g. under torchrun)."""
import argparse
import sys

from ..errors import CodesignError
from .trainer import add_train_arguments, run_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codesign.train", description="float pre-training, then QAT")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run_from_args(args)
    except (CodesignError, OSError) as e:
        print(f"codesign.train: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
