import sys

from jaxgram.cli import main

sys.exit(main())
