"""`python -m llmbulk`."""

from llmbulk.cli import main

main()
