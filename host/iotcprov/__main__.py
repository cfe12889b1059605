from iotcprov.cli import main

raise SystemExit(main())
