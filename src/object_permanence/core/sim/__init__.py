"""core sim subpackage."""
