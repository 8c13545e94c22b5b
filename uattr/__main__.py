"""``python -m uattr`` is the ``uattr`` command."""

import sys

from uattr.bin.main import main

sys.exit(main())
