import sys

from cradle.cli import main

sys.exit(main())
