"""``python -m hikyuu_qlib`` runs the ``hq`` command."""

from hikyuu_qlib.cli.main import main

main()
