"""Break-glass debug logging of raw chat content: off by default, time-bounded, audited."""
