"""`python -m edr_tools.capacity`: see edr_tools/capacity/__init__.py."""

import sys

from edr_tools.capacity.report import main

sys.exit(main())
