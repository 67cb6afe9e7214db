from armalias.cli import main

raise SystemExit(main())
