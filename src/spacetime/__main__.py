from spacetime.cli import main

raise SystemExit(main())
