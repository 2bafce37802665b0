"""`python -m sendline.cli` runs the command line (as the `sendline` script does)."""

from sendline.cli import main

main()
