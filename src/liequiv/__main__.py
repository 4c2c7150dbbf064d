from liequiv.cli import main

raise SystemExit(main())
