"""``python -m spinglass_icl.cli``: the same as the ``spinglass-icl`` script."""

import sys

from . import main

sys.exit(main())
