import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the package imports
    print("smfsym: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
