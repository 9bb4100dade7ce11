"""cometx-mirror: a Git-like, content-addressed local mirror of experiment-tracking data."""
__version__ = "0.1.0"
