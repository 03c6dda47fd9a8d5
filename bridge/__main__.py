"""``python -m bridge`` is the same as the ``graph-mail-bridge`` command."""

from bridge.cli import main

raise SystemExit(main())
