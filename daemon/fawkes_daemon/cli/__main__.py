"""`python -m fawkes_daemon.cli`: what the systemd unit and launchd agent run."""

import sys

from fawkes_daemon.cli import main

sys.exit(main())
