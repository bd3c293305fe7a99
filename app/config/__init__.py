"""Configuration: the environment (settings), the services file, durations, and reloading them."""
