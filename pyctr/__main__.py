"""`python -m pyctr` runs the same CLI as the `pyctr` command."""

from pyctr.cli import main

if __name__ == "__main__":
    main()
