"""Arrays the built-in examples load (see :mod:`landscape.zoo`)."""
