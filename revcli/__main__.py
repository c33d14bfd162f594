from revcli.cli import main

main()
