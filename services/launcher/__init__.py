"""`friday up`: the whole mesh on one machine, one process per service."""
