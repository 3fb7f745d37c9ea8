"""`python -m flotilla.sim ...`: the `flotilla sim` command alone (what launchers run)."""

import typer

from flotilla.sim.commands import sim

if __name__ == "__main__":
    typer.run(sim)
