"""`python -m applications.benchmark`: see the package's docstring."""

from applications.benchmark.run import main

if __name__ == "__main__":
    main()
