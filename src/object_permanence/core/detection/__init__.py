"""core detection subpackage."""
