from govtune.cli import main

raise SystemExit(main())
