from satflow.cli import main

raise SystemExit(main())
