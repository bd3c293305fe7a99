"""The urls signal: its facts and the prober that reads them at decision time."""
