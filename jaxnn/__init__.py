"""jaxnn."""
