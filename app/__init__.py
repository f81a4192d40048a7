"""Experience layer: the HTTP API, CLI, error rendering and observability wiring."""

__version__ = "0.1.0"
