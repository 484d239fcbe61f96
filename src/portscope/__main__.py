from portscope.cli import run

run()
