"""``python -m gate``: the same command as ``gate``."""

from gate.cli.main import app

if __name__ == "__main__":
    app(prog_name="gate")
