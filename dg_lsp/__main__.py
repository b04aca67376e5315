import sys

from dg_lsp.cli import main

sys.exit(main())
