"""`python distill.py --config configs/tnews.yaml` = `kdnlp distill --config configs/tnews.yaml`."""
import sys

from kdnlp.cli import main

if __name__ == "__main__":
    sys.exit(main(["distill", *sys.argv[1:]]))
