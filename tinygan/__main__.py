"""``python -m tinygan``: the command line (the same as the ``tinygan`` command)."""

from tinygan.run.cli import main

if __name__ == "__main__":
    main()
