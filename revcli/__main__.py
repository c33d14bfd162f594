from revcli._entry import main

main()
