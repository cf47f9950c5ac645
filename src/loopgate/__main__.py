from loopgate.cli import main

raise SystemExit(main())
