"""``python -m syncplayd.cli.ctl``: the same as ``syncplayctl``."""

from __future__ import annotations

from syncplayd.cli.ctl import main

main()
