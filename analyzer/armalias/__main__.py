from armalias.cli import run

run()
