"""core persistence subpackage."""
