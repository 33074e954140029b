from __future__ import annotations

from syncplayd.cli.daemon import main

main()
