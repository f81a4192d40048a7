"""The composition root: builds the runtime, wires the HTTP API (controllers, dependencies,
middleware), the CLI, the demo seed and health, plus the console and eval, which only consume
the API and the services. Nothing imports this package (docs/ARCHITECTURE.md)."""

__version__ = "0.1.0"
