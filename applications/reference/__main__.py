"""`python -m applications.reference`: see `applications.reference.main`."""

from applications.reference.main import main

if __name__ == "__main__":
    main()
