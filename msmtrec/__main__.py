"""``python -m msmtrec``: the command line (what ``torchrun -m msmtrec`` runs on every rank)."""

from msmtrec.cli import main

main(prog_name="msmtrec")
