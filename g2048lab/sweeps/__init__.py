"""Sweeps: settings x seeds trained as ordinary runs, a few at once, compared by group."""
