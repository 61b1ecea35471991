"""`python -m llmbulk`."""

from llmbulk.entry import main

main()
