"""``python -m devin_async.demo``: runs ``devin-async demo`` with the same options."""

from __future__ import annotations

if __name__ == "__main__":
    import sys

    from ._demo import main

    sys.exit(main())
