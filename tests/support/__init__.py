"""Helpers shared by the test modules: plain functions, constants and classes, grouped by what
they are for. Fixtures live in the ``conftest.py`` files; no test module imports a conftest or
another test module (``tests/unit/test_test_layout.py`` holds that rule)."""
