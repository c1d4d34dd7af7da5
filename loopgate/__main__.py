from loopgate.cli import main

main()
