"""``python -m spinglass_icl``: the same as the ``spinglass-icl`` script."""

import sys

from .cli import main

sys.exit(main())
