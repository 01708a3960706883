"""`python -m applications.sample`: see `applications.sample`."""

from applications.sample.main import main

if __name__ == "__main__":
    main()
