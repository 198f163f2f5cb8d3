"""The subcommands, one module each: `main` parses the command line, builds the `Opened`
queue once, and calls the one function here that the subcommand names, flags by keyword."""
