import sys

from applier.cli import main

sys.exit(main())
