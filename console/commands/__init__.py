"""CLI commands, one module each; see console.cli.COMMAND_MODULES."""
