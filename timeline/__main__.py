"""`python -m timeline ...` is the `timeline-bot` command (the same entry point as bot.py).

A launcher only: the core does not depend on the command line, the import happens here.
"""

import sys

if __name__ == "__main__":
    from timeline.cli.main import main

    sys.exit(main())
