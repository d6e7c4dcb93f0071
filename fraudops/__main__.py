"""``python -m fraudops`` runs the command line."""

from fraudops.cli import main

main()
