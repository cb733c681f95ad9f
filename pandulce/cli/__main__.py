from pandulce.cli import main

main(prog_name="pandulce")
