"""`python -m applications.depth_study`: see `applications.depth_study`."""

import sys

from applications.depth_study.main import main

main(sys.argv[1:])
