"""armalias: find cache-alias bugs in the ARM Linux kernel."""

__version__ = "0.1.0"
