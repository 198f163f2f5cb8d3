"""journalq's version, in a module of its own: the modules that record it (in each session
and run card) and the command line import it without importing the package's public API."""

VERSION = "0.1.0"
