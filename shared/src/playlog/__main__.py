"""``python -m playlog`` is the ``playlog`` command."""

from playlog.cli.main import main

main()
