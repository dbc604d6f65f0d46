"""pnsc command-line front end."""
__version__ = "0.1.0"
