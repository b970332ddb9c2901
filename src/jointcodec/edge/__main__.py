"""``python -m jointcodec.edge EXPORT_DIR INPUT... -o OUT.jcc``: the edge client's command line (no torch)."""

import sys

from jointcodec.edge.client import main

sys.exit(main())
