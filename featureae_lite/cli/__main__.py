"""``python -m featureae_lite.cli``: the console script."""

import sys

from featureae_lite.cli import main

sys.exit(main())
