"""``python -m evostrat`` runs the command line."""

from evostrat.cli import main

raise SystemExit(main())
