"""The run engine: the run as a value, the one driver, termination, restarts and bounds."""
