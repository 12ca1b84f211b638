"""`python -m connman`: the command line."""

from connman.cli import main

raise SystemExit(main())
