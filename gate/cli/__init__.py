"""The command line face of gate (typer + rich)."""
